"""Serving a driver tree in this process, over a real gRPC connection (see `jumpstarter.testing`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from functools import partial

from anyio.from_thread import BlockingPortal

from jumpstarter.client.base import DriverClient
from jumpstarter.client.classes import ClientClassPolicy
from jumpstarter.client.connect import async_client, blocking_client, connect_endpoint_async
from jumpstarter.client.endpoint import ExporterEndpoint
from jumpstarter.common.loops import blocking_loop
from jumpstarter.driver.base import Driver
from jumpstarter.driver.tree import walk_tree
from jumpstarter.exporter import SessionProvider, SingleSession, listen


@contextmanager
def serve(root: Driver) -> Iterator[DriverClient]:
    """Serve `root` and its children on a private Unix socket; yield a client of the tree.

    The drivers run in this process, on an event loop in a background thread, and the
    client reaches them over a real gRPC connection. Leaving the block closes the client
    and the streams it opened, stops the server and closes the drivers.
    """
    with blocking_client(partial(_serve_client, root)) as client:
        yield client


@asynccontextmanager
async def serve_async(root: Driver) -> AsyncIterator[DriverClient]:
    """Async twin of `serve`: the drivers and the client run on the current event loop.

    The client's async API (`call_async`...) is for this loop; its blocking API is for
    other threads only.
    """
    async with async_client(partial(_serve_client, root)) as client:
        yield client


@asynccontextmanager
async def serve_socket_async(root: Driver | SessionProvider) -> AsyncIterator[str]:
    """Serve `root` on a private Unix socket, on the current event loop; yield the socket's path.

    `root` is a driver tree (served in one session, as `jmp shell` serves its exporter) or a
    session provider of `jumpstarter.exporter`, such as a `SingleSession` whose status a
    test sets.
    """
    provider = SingleSession(root) if isinstance(root, Driver) else root
    async with listen(provider, private_unix=True) as listening:
        assert listening.unix_path is not None  # private_unix: a socket in a private directory
        yield listening.unix_path


@contextmanager
def serve_socket(root: Driver | SessionProvider) -> Iterator[str]:
    """`serve_socket_async` from an event loop in a background thread, for synchronous tests."""
    with blocking_loop() as portal, portal.wrap_async_context_manager(serve_socket_async(root)) as path:
        yield path


@asynccontextmanager
async def _serve_client(root: Driver, portal: BlockingPortal, stack: ExitStack) -> AsyncIterator[DriverClient]:
    # The drivers were built here, so the client classes they name are trusted: exactly those.
    policy = ClientClassPolicy.exactly(place.node.client() for place in walk_tree(root))
    async with (
        serve_socket_async(root) as path,
        # Our own exporter: it takes frequent keepalive pings, no need to learn it from its report.
        connect_endpoint_async(
            ExporterEndpoint(path, keepalive=True), portal=portal, stack=stack, policy=policy
        ) as client,
    ):
        yield client
