"""`serve()`: a driver tree and a client of it in one process, over a real gRPC connection."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from functools import partial
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from anyio.from_thread import BlockingPortal

    from jumpstarter.client import DriverClient
    from jumpstarter.driver import Driver


@contextmanager
def serve(root: Driver) -> Iterator[DriverClient]:
    """Serve `root` and its children on a private Unix socket; yield a client of the tree.

    For tests and examples: the drivers run in this process (on an event loop in a
    background thread) and the client reaches them over a real gRPC connection, so
    they behave as they would behind an exporter. Leaving the block closes the client
    and the streams it opened, stops the server and closes the drivers.
    """
    from jumpstarter.client.connect import blocking_client

    with blocking_client(partial(_serve, root)) as client:
        yield client


@asynccontextmanager
async def serve_async(root: Driver) -> AsyncIterator[DriverClient]:
    """Async twin of `serve`: the drivers and the client run on the current event loop.

    The client's async API (`call_async`...) is for this loop; its blocking API is for
    other threads only.
    """
    from jumpstarter.client.connect import async_client

    async with async_client(partial(_serve, root)) as client:
        yield client


@asynccontextmanager
async def _serve(root: Driver, portal: BlockingPortal, stack: ExitStack) -> AsyncIterator[DriverClient]:
    from jumpstarter.client.classes import ClientClassPolicy
    from jumpstarter.client.connect import connect_endpoint_async
    from jumpstarter.client.endpoint import ExporterEndpoint
    from jumpstarter.exporter.session import Session, walk

    # The drivers were built here, so the client classes they name are trusted: exactly those.
    policy = ClientClassPolicy.exactly(driver.client() for driver, _, _ in walk(root))
    async with (
        Session(root) as session,
        session.serve_unix() as path,
        connect_endpoint_async(ExporterEndpoint(path), portal=portal, stack=stack, policy=policy) as client,
    ):
        yield client
