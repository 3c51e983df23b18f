"""Fixtures shared by the lab's test folders (tests/controller, tests/lab): a conftest imports them.

The root conftest runs anyio's tests on asyncio with one runner per module: gRPC's asyncio poller
keeps the loop it started on while any gRPC object of it lives, and a new loop per test would find
it closed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from jumpstarter.testing import Commands
from testsupport.labcontroller import LabController

__all__ = ["commands", "lab", "one_event_loop"]


@pytest.fixture(scope="module")
async def one_event_loop(anyio_backend: str) -> AsyncIterator[None]:
    """Holds anyio's test runner (and its loop) for the whole module; async tests ask for it."""
    yield


@pytest.fixture
def commands(tmp_path: Path) -> Iterator[Commands]:
    with Commands(tmp_path) as started:
        yield started


@pytest.fixture
def lab(commands: Commands, tmp_path: Path) -> LabController:
    """A real `jmp controller run` process (SQLite in its state directory)."""
    return LabController.start(commands, tmp_path / "state")
