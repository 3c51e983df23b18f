"""Copying between byte streams, with half-close."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
from anyio import EndOfStream
from anyio.abc import AnyByteStream, SocketStream

from jumpstarter.streams.frames import MAX_FRAME

# One read of a socket takes what it holds up to a frame's worth, not anyio's default of 64 KiB:
# a gRPC message of 64 KiB is a few bytes more on its HTTP/2 connection, so 64 KiB reads of a
# tunnelled connection (the client's tunnel, the exporter's end of it) cut every such message in
# two, and the second piece, a router frame of its own, costs the router and both ends about as
# much as the first (an echo through the router: 62 instead of 70 ms of CPU per MB in all, in
# benchmarks/lab_shell.py). Other streams (a driver's) are read at the size they choose.
SOCKET_READ_BYTES = MAX_FRAME


async def copy_stream(
    source: AnyByteStream, sink: AnyByteStream, after_eof: Callable[[], Awaitable[None]] | None = None
) -> None:
    """Copy chunks from `source` to `sink` until `source` ends, then half-close `sink`.

    Works with anyio byte streams and object streams of bytes. Errors propagate.
    `after_eof` runs once the end of stream has been passed on.
    """
    while True:
        try:
            chunk = await (source.receive(SOCKET_READ_BYTES) if isinstance(source, SocketStream) else source.receive())
        except EndOfStream:
            break
        await sink.send(chunk)
    await sink.send_eof()
    if after_eof is not None:
        await after_eof()


async def splice(a: AnyByteStream, b: AnyByteStream, after_a_eof: Callable[[], Awaitable[None]] | None = None) -> None:
    """Copy both ways between `a` and `b` until both directions have ended.

    Each direction ends on its own (a half-close reaches the other side as end of stream);
    an error in either direction cancels the other and propagates. `after_a_eof` runs once
    the end of `a` has been passed on to `b`.
    """
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(copy_stream, a, b, after_a_eof)
        tasks.start_soon(copy_stream, b, a)
