"""Connecting a client to an exporter session."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import AbstractAsyncContextManager, ExitStack, asynccontextmanager, contextmanager

import anyio
import grpc
from anyio.from_thread import BlockingPortal, start_blocking_portal
from google.protobuf import empty_pb2

from jumpstarter.client.base import DriverClient
from jumpstarter.client.classes import ClientClassPolicy
from jumpstarter.client.connection import Connection
from jumpstarter.client.tree import build_client_tree
from jumpstarter.common.exceptions import DriverConnectionError
from jumpstarter.common.protocol import CHANNEL_OPTIONS
from jumpstarter.v1 import jumpstarter_pb2_grpc


@asynccontextmanager
async def connect_unix_async(
    path: str, *, portal: BlockingPortal, stack: ExitStack, policy: ClientClassPolicy
) -> AsyncIterator[DriverClient]:
    """Connect to the session listening on the Unix socket `path`; yield the root client.

    Runs on the event loop of `portal`, where the client's async API will run too.
    """
    target = f"unix://{path}"
    # Local credentials: no TLS on a Unix socket, but call credentials (tokens) may still be sent.
    credentials = grpc.local_channel_credentials(grpc.LocalConnectionType.UDS)
    channel = grpc.aio.secure_channel(target, credentials, options=CHANNEL_OPTIONS)
    sync_channel = grpc.secure_channel(target, credentials, options=CHANNEL_OPTIONS)
    try:
        report = await jumpstarter_pb2_grpc.ExporterServiceStub(channel).GetReport(empty_pb2.Empty())
    except BaseException as error:
        sync_channel.close()
        await channel.close()
        if isinstance(error, grpc.RpcError):
            raise DriverConnectionError(f"cannot reach the exporter at {path}: {error.details()}") from None  # type: ignore[attr-defined]
        raise
    connection = Connection(address=path, channel=channel, sync_channel=sync_channel, portal=portal, report=report)
    try:
        yield build_client_tree(connection, stack, policy)
    finally:
        await connection.aclose()


OpenClient = Callable[[BlockingPortal, ExitStack], AbstractAsyncContextManager[DriverClient]]


@contextmanager
def blocking_client(open_client: OpenClient) -> Iterator[DriverClient]:
    """Run `open_client` on an event loop in a background thread; yield its client here.

    Streams opened with `open_stream()` are closed from this thread on exit, before the
    loop stops.
    """
    with (
        start_blocking_portal() as portal,
        ExitStack() as stack,
        portal.wrap_async_context_manager(open_client(portal, stack)) as client,
    ):
        try:
            yield client
        finally:
            stack.close()


@asynccontextmanager
async def async_client(open_client: OpenClient) -> AsyncIterator[DriverClient]:
    """Run `open_client` on the current event loop; yield its client."""
    async with BlockingPortal() as portal:
        stack = ExitStack()
        try:
            async with open_client(portal, stack) as client:
                yield client
        finally:
            await anyio.to_thread.run_sync(stack.close)


def _opener(path: str, allow: Iterable[str], unsafe: bool) -> OpenClient:
    policy = ClientClassPolicy.default(allow, unsafe)
    return lambda portal, stack: connect_unix_async(path, portal=portal, stack=stack, policy=policy)


@contextmanager
def connect(path: str, *, allow: Iterable[str] = (), unsafe: bool = False) -> Iterator[DriverClient]:
    """Connect to the exporter session on the Unix socket `path`; yield the root client.

    The exporter names a client class for each driver; this process imports only those
    its allow-list admits (see `ClientClassPolicy.default`: the installed driver packages,
    the client configuration and ``JMP_DRIVERS_ALLOW``), plus the glob patterns in `allow`
    (e.g. ``"mycompany_drivers.*"``). Drivers whose client class is not admitted become
    stubs that explain how to admit them. ``unsafe=True`` admits any class.
    """
    with blocking_client(_opener(path, allow, unsafe)) as client:
        yield client


@asynccontextmanager
async def connect_async(path: str, *, allow: Iterable[str] = (), unsafe: bool = False) -> AsyncIterator[DriverClient]:
    """Async twin of `connect`, on the current event loop."""
    async with async_client(_opener(path, allow, unsafe)) as client:
        yield client
