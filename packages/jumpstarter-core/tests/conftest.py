"""Fixtures shared by the core's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager

import pytest
from anyio.from_thread import start_blocking_portal

from jumpstarter.driver import Driver
from jumpstarter.exporter import Session


@asynccontextmanager
async def _serving(root: Driver) -> AsyncIterator[str]:
    async with Session(root) as session, session.serve_unix() as path:
        yield path


@contextmanager
def _exporter(root: Driver) -> Iterator[str]:
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(_serving(root)) as path:
        yield path


@pytest.fixture
def exporter_socket() -> Callable[[Driver], AbstractContextManager[str]]:
    """Serve a driver tree from an event loop in a background thread, as an exporter would;
    the context manager yields the socket path for clients to connect to."""
    return _exporter
