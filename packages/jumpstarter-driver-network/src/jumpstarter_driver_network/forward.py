"""Port forwards: local listeners whose every connection opens a new stream to a network driver.

`serve_tcp` and `serve_unix` are async context managers that run on the client's event
loop; `NetworkClient.forward_tcp()` and `forward_unix()` wrap them for blocking code. Each
accepted connection is served by its own task: one that fails is logged and reset, and
the others go on. Leaving the context closes the listener, resets the connections still
open, removes a Unix socket it created and waits for all its tasks to end.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import stat
import struct
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from typing import Any

import anyio
from anyio import BrokenResourceError, ClosedResourceError, EndOfStream
from anyio.abc import ByteStream, Listener, SocketAttribute, SocketListener, SocketStream, TaskGroup

from jumpstarter.common import background_tasks, create_unix_listener
from jumpstarter_driver_network.addresses import join_host_port

# Opens a new stream to the driver (the client's `stream_async("connect")`).
OpenStream = Callable[[], AbstractAsyncContextManager[ByteStream]]

# Bytes read from a local connection at a time: larger reads make fewer, larger frames.
CHUNK = 256 * 1024


@asynccontextmanager
async def serve_tcp(
    open_stream: OpenStream, *, host: str, port: int, logger: logging.Logger
) -> AsyncIterator[tuple[str, int]]:
    """Listen on TCP `host`:`port` (0: a free port); yield the bound (host, port)."""
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    bound = listener.extra(SocketAttribute.local_address)
    name = "TCP " + join_host_port(str(bound[0]), bound[1])
    async with listener, _Forward(open_stream, name, logger).serving(listener):
        logger.debug("forwarding %s", name)
        yield str(bound[0]), int(bound[1])


@asynccontextmanager
async def serve_unix(open_stream: OpenStream, *, path: str | None, logger: logging.Logger) -> AsyncIterator[str]:
    """Listen on the Unix socket `path` (None: a new one in a private directory); yield its path.

    The socket is removed on exit, and so is the private directory.
    """
    directory = None
    if path is None:
        # Only this user may enter the directory, so only this user can connect.
        directory = tempfile.mkdtemp(prefix="jumpstarter-forward-", dir=_runtime_dir())
        path = os.path.join(directory, "socket")
    identity = None
    try:
        listener = await create_unix_listener(path)
        identity = _socket_identity(path)
        async with listener, _Forward(open_stream, f"Unix socket {path}", logger).serving(listener):
            logger.debug("forwarding Unix socket %s", path)
            yield path
    finally:
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
        elif identity is not None and _socket_identity(path) == identity:
            # Still ours: nobody bound another socket at that path meanwhile.
            with suppress(OSError):
                os.unlink(path)


class _Forward:
    """The connections of one listener, each copied to a new driver stream by its own task."""

    def __init__(self, open_stream: OpenStream, name: str, logger: logging.Logger) -> None:
        self.open_stream = open_stream
        self.name = name
        self.logger = logger
        self.stopping = False

    @asynccontextmanager
    async def serving(self, listener: Listener[SocketStream]) -> AsyncIterator[None]:
        # Leaving the body cancels the tasks; an exception of the body propagates as itself,
        # not wrapped in an ExceptionGroup (the caller's code runs in that body).
        async with background_tasks() as tasks:
            # A TCP listener on a name such as "localhost" is several sockets (IPv4 and IPv6).
            for single in getattr(listener, "listeners", [listener]):
                tasks.start_soon(self.accept, single, tasks)
            try:
                yield
            finally:
                self.stopping = True

    async def accept(self, listener: SocketListener, tasks: TaskGroup) -> None:
        while True:
            try:
                local = await listener.accept()
            except (ClosedResourceError, BrokenResourceError):
                return
            except OSError as error:  # out of file descriptors, for instance: try again shortly
                self.logger.warning("forward %s: accepting a connection failed: %s", self.name, error)
                await anyio.sleep(0.1)
                continue
            tasks.start_soon(self.forward, local)

    async def forward(self, local: SocketStream) -> None:
        """Serve one local connection: open a driver stream and copy both ways until both have ended."""
        completed = False
        try:
            async with self.open_stream() as remote, anyio.create_task_group() as copies:
                copies.start_soon(_copy, local, remote, True)
                copies.start_soon(_copy, remote, local, False)
            completed = True
        except Exception as error:
            errors = error.exceptions if isinstance(error, BaseExceptionGroup) else (error,)
            reasons = [e for e in errors if not isinstance(e, _LocalPeerLeft)]
            if reasons and not self.stopping:
                self.logger.warning("forward %s: connection reset: %s", self.name, _describe(reasons[0]))
            else:
                # The local peer reset its connection, or the forward stops (which may break
                # a driver stream in the middle of a read): nothing to report.
                self.logger.debug("forward %s: connection closed: %s", self.name, _describe(error))
        finally:
            if not completed:
                # The driver's stream failed (or the forward is stopping): reset, not end, the
                # local connection, so that its peer cannot take a cut-off answer for a whole one.
                _reset(local)
            with anyio.CancelScope(shield=True):
                await local.aclose()


class _LocalPeerLeft(Exception):
    """The local peer reset its connection: an ordinary end, nothing to report."""


async def _copy(source: Any, sink: Any, from_local: bool) -> None:
    """Copy `source` to `sink` until `source` ends, then half-close `sink`."""
    local_errors = (BrokenResourceError, ClosedResourceError, OSError)
    while True:
        try:
            chunk = await (source.receive(CHUNK) if from_local else source.receive())
        except EndOfStream:
            break
        except local_errors as error:
            if from_local:
                raise _LocalPeerLeft() from error
            raise
        try:
            await sink.send(chunk)
        except local_errors as error:
            if not from_local:
                raise _LocalPeerLeft() from error
            raise
    try:
        await sink.send_eof()
    except local_errors as error:
        if not from_local:
            raise _LocalPeerLeft() from error
        raise


def _reset(stream: SocketStream) -> None:
    """Make a TCP connection end with a reset (RST) rather than an end (FIN), and close it."""
    with suppress(Exception):
        sock = stream.extra(SocketAttribute.raw_socket)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            # A zero linger time makes closing the socket send RST.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # Older anyio versions (4.6, the oldest the core allows) shut the write side down in
    # aclose(), which sends FIN before the RST and lets the peer read a clean end; the
    # asyncio transport's abort() closes the socket at once, as aclose() does in later
    # versions (aclose() then has nothing left to do).
    transport = getattr(stream, "_transport", None)
    if transport is not None:
        transport.abort()


def _describe(error: BaseException) -> str:
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    if isinstance(error, EndOfStream):
        return "the driver ended the stream"
    return str(error) or type(error).__name__


def _socket_identity(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_dev, info.st_ino) if stat.S_ISSOCK(info.st_mode) else None


def _runtime_dir() -> str | None:
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return runtime if runtime and os.path.isdir(runtime) else None
