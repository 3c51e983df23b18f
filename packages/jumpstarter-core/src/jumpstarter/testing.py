"""Serving a driver tree in the test's own process, over a real gRPC connection.

- `serve(root)` / `serve_async(root)`: the drivers and a client of them, for tests and
  examples of drivers and clients (also importable as ``jumpstarter.common.utils.serve``,
  the original's path);
- `serve_socket(root)` / `serve_socket_async(root)`: the drivers on a private Unix socket,
  for tests that connect to it themselves (``connect(path)``, ``j``, another process...).

The drivers behave as they would behind an exporter: one session resets them on entry and
closes them on exit, and every call crosses a real socket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from functools import partial

from anyio.from_thread import BlockingPortal, start_blocking_portal

from jumpstarter.client.base import DriverClient
from jumpstarter.client.classes import ClientClassPolicy
from jumpstarter.client.connect import async_client, blocking_client, connect_endpoint_async
from jumpstarter.client.endpoint import ExporterEndpoint
from jumpstarter.driver.base import Driver
from jumpstarter.driver.tree import walk_tree
from jumpstarter.exporter import SingleSession, listen

__all__ = ["serve", "serve_async", "serve_socket", "serve_socket_async"]


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
async def serve_socket_async(root: Driver) -> AsyncIterator[str]:
    """Serve `root` on a private Unix socket, on the current event loop; yield the socket's path."""
    async with listen(SingleSession(root), private_unix=True) as listening:
        assert listening.unix_path is not None
        yield listening.unix_path


@contextmanager
def serve_socket(root: Driver) -> Iterator[str]:
    """`serve_socket_async` from an event loop in a background thread, for synchronous tests."""
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(serve_socket_async(root)) as path:
        yield path


@asynccontextmanager
async def _serve_client(root: Driver, portal: BlockingPortal, stack: ExitStack) -> AsyncIterator[DriverClient]:
    # The drivers were built here, so the client classes they name are trusted: exactly those.
    policy = ClientClassPolicy.exactly(place.node.client() for place in walk_tree(root))
    async with (
        serve_socket_async(root) as path,
        connect_endpoint_async(ExporterEndpoint(path), portal=portal, stack=stack, policy=policy) as client,
    ):
        yield client
