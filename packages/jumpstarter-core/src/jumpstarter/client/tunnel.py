"""The client's end of the tunnel to a leased exporter (wire protocol §4.7).

A Unix socket in a private directory: each connection accepted on it asks the controller to
Dial the lease, opens the router's Stream with the token it got, and carries the connection's
bytes both ways (`FrameStream`, GOAWAY as the half-close). The clients of the lease do not
connect to that socket themselves: the socket `tunnel` yields is served by
`_shared_connection`, which forwards every call over one connection through it, so that a
new client (each `j` of a shell) needs no Dial, and keeps working while the controller is
away. gRPC clients connect to it as to a local exporter, so everything that works with
``--host`` works through a lease.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import anyio
import grpc
from anyio.abc import SocketStream

from jumpstarter.client._shared_connection import shared_connection
from jumpstarter.client.lab import LabClient, LabError
from jumpstarter.common.unix_sockets import create_unix_listener
from jumpstarter.config.durations import format_duration
from jumpstarter.streams.copy import splice
from jumpstarter.streams.frames import FrameStream
from jumpstarter.v1 import router_pb2_grpc

__all__ = ["tunnel"]

logger = logging.getLogger(__name__)

# Dial fails with FAILED_PRECONDITION while the exporter gets ready (the original's exporter
# may take a moment after the lease is granted): tried again this often, for this long.
DIAL_RETRY_SECONDS = 0.2
DIAL_PATIENCE_SECONDS = 30.0
# On the way out, how long the connections through the router may take to end once their clients left.
CLOSE_WAIT_SECONDS = 1.0


@asynccontextmanager
async def tunnel(lab: LabClient, lease_name: str, quiet_until: anyio.Event | None = None) -> AsyncIterator[str]:
    """Serve the tunnel to `lease_name`'s exporter on a new Unix socket; yield its path.

    A path to the exporter that breaks is one warning, and one line when it is back (see `_Outage`);
    before `quiet_until` is set (while the client waits for the exporter, and says itself why it
    is not ready), a connection that cannot be dialled is for debugging only.
    """
    directory = _private_directory()
    try:
        async with (
            _dialling(lab, lease_name, directory / "dial", quiet_until) as dialling,
            shared_connection(f"unix:{dialling}", str(directory / "socket")) as path,
        ):
            yield path
    finally:
        _remove(directory)


@asynccontextmanager
async def _dialling(lab: LabClient, lease_name: str, path: Path, quiet_until: anyio.Event | None) -> AsyncIterator[str]:
    """A Unix socket whose every connection is a new Dial and router stream (see the module's documentation)."""
    channels: dict[str, grpc.aio.Channel] = {}
    carrying: set[SocketStream] = set()
    outage = _Outage(lease_name, quiet_until)
    idle = anyio.Event()

    async def carry(connection: SocketStream) -> None:
        nonlocal idle
        if not carrying:
            idle = anyio.Event()
        carrying.add(connection)
        try:
            await _carry(lab, lease_name, connection, channels, outage)
        finally:
            carrying.discard(connection)
            if not carrying:
                idle.set()

    try:
        listener = await create_unix_listener(path)
        async with listener, anyio.create_task_group() as tasks:

            async def serve() -> None:
                while True:
                    connection = await listener.accept()
                    tasks.start_soon(carry, connection)

            tasks.start_soon(serve)
            try:
                yield str(path)
            finally:
                # The shared connection has closed its end: let the connections end by themselves first
                # (a Unix socket's receive cancelled as data arrives trips anyio, an error in a callback).
                if carrying:
                    with anyio.move_on_after(CLOSE_WAIT_SECONDS, shield=True):
                        await idle.wait()
                tasks.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            for channel in channels.values():
                await channel.close()


async def _carry(
    lab: LabClient,
    lease_name: str,
    connection: SocketStream,
    channels: dict[str, grpc.aio.Channel],
    outage: _Outage,
) -> None:
    """One accepted connection: Dial, the router's Stream, and the bytes both ways; errors end it alone."""
    async with connection:
        try:
            endpoint, token = await _dial(lab, lease_name)
        except (LabError, TimeoutError) as error:
            outage.failed(error)
            return
        outage.dialled()
        channel = channels.get(endpoint)
        if channel is None:
            channel = grpc.aio.secure_channel(endpoint, grpc.ssl_channel_credentials(root_certificates=lab.ca))
            channels[endpoint] = channel
        call = router_pb2_grpc.RouterServiceStub(channel).Stream(metadata=(("authorization", f"Bearer {token}"),))
        frames = FrameStream(call, client_side=True)
        try:
            await splice(connection, frames)
        except* (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as errors:
            # One side went away (gRPC drops a connection it replaced): this connection ends, no other.
            logger.debug("a tunnel connection of lease %s ended: %s", lease_name, errors.exceptions[0])
        finally:
            await frames.aclose()


@dataclass
class _Outage:
    """Whether the path to the exporter is broken: said once when it breaks, once when it is back.

    The shared connection dials again every couple of seconds while the exporter is away (and at
    each call its clients make): each failure is for debugging; the user hears of the outage once.
    """

    lease_name: str
    quiet_until: anyio.Event | None
    since: float | None = None

    def failed(self, error: Exception) -> None:
        message = f"cannot connect to the exporter of lease {self.lease_name}: {error}"
        if self.since is not None or (self.quiet_until is not None and not self.quiet_until.is_set()):
            logger.debug(message)
            return
        self.since = time.monotonic()
        logger.warning("%s (trying again)", message)

    def dialled(self) -> None:
        if self.since is None:
            return
        down = format_duration(max(1, round(time.monotonic() - self.since)))
        self.since = None
        logger.info("the exporter of lease %s can be reached again (after %s)", self.lease_name, down)


async def _dial(lab: LabClient, lease_name: str) -> tuple[str, str]:
    with anyio.fail_after(DIAL_PATIENCE_SECONDS):
        while True:
            try:
                return await lab.dial(lease_name)
            except LabError as error:
                if error.code != grpc.StatusCode.FAILED_PRECONDITION or "not ready" not in str(error):
                    raise
            await anyio.sleep(DIAL_RETRY_SECONDS)


def _private_directory() -> Path:
    """A new 0700 directory for the socket, under $XDG_RUNTIME_DIR when there is one (as the original)."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    return Path(tempfile.mkdtemp(prefix="jmp-lease-", dir=base if base and os.path.isdir(base) else None))


def _remove(directory: Path) -> None:
    for name in ("socket", "dial"):
        with suppress(OSError):
            (directory / name).unlink()
    with suppress(OSError):
        directory.rmdir()
