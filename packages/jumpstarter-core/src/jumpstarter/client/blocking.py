"""`BlockingStream`: a driver byte stream for synchronous code."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio import BrokenResourceError, ClosedResourceError, EndOfStream

from jumpstarter.common.tasks import background_tasks
from jumpstarter.streams.channel import ThreadChannel

# Bytes buffered per direction between the calling thread and the event loop.
BUFFER_BYTES = 4 << 20


class BlockingStream:
    """A byte stream whose methods block the calling thread.

    Data is buffered in both directions, so `send` returns as soon as the data is queued
    and `receive` returns what has already arrived: a busy stream costs no thread switch
    per call. Leaving the `with client.stream()` block delivers what was sent, then closes.
    """

    def __init__(self, outgoing: ThreadChannel[bytes], incoming: ThreadChannel[bytes]) -> None:
        self._outgoing = outgoing
        self._incoming = incoming
        self._chunk = b""
        self._offset = 0
        self._sent_eof = False

    def send(self, data: bytes) -> None:
        """Queue `data` for the driver; blocks only while the send buffer is full."""
        if self._sent_eof:
            raise ClosedResourceError("send_eof() was called on this stream")
        if data:
            self._outgoing.put(bytes(data))

    def send_eof(self) -> None:
        """No more data from this side; the driver's side of the stream sees its end."""
        self._sent_eof = True
        self._outgoing.finish()

    def receive(self, max_bytes: int = 65536) -> bytes:
        """At most `max_bytes` of data from the driver; raises EndOfStream when it has sent all."""
        if self._offset >= len(self._chunk):
            self._chunk = b"".join(self._incoming.get_batch())
            self._offset = 0
        chunk = self._chunk[self._offset : self._offset + max_bytes]
        self._offset += len(chunk)
        return chunk

    def __iter__(self) -> Iterator[bytes]:
        """The received chunks, until the end of the stream."""
        while True:
            try:
                yield self.receive()
            except EndOfStream:
                return


@asynccontextmanager
async def blocking_stream(stream: Any) -> AsyncIterator[BlockingStream]:
    """Serve `stream` (an anyio byte stream on this event loop) to threads as a BlockingStream."""
    loop = asyncio.get_running_loop()
    outgoing: ThreadChannel[bytes] = ThreadChannel(loop, BUFFER_BYTES, len)
    incoming: ThreadChannel[bytes] = ThreadChannel(loop, BUFFER_BYTES, len)
    try:
        async with background_tasks() as tasks:
            sent = anyio.Event()
            tasks.start_soon(_pump_out, outgoing, stream, sent)
            tasks.start_soon(_pump_in, stream, incoming)
            yield BlockingStream(outgoing, incoming)
            # Leaving normally: deliver what the caller sent before closing.
            outgoing.finish()
            await sent.wait()
    finally:
        outgoing.abort()
        incoming.abort()


async def _pump_out(outgoing: ThreadChannel[bytes], stream: Any, done: anyio.Event) -> None:
    try:
        while True:
            try:
                batch = await outgoing.aget_batch()
            except EndOfStream:
                await stream.send_eof()
                return
            # Coalesce what queued up while the last send was in flight: fewer, larger frames.
            await stream.send(batch[0] if len(batch) == 1 else b"".join(batch))
    except (BrokenResourceError, ClosedResourceError):
        outgoing.abort()  # the next send() in the thread fails
    finally:
        done.set()


async def _pump_in(stream: Any, incoming: ThreadChannel[bytes]) -> None:
    try:
        while True:
            await incoming.aput(await stream.receive())
    except EndOfStream:
        incoming.finish()
    except (BrokenResourceError, ClosedResourceError) as error:
        incoming.finish(BrokenResourceError(f"the stream broke: {error}") if str(error) else BrokenResourceError())
    except Exception as error:
        incoming.finish(error)
