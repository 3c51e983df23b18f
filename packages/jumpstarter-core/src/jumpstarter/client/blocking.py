"""`BlockingStream`: a driver byte stream for synchronous code."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

from anyio import BrokenResourceError, ClosedResourceError, EndOfStream

from jumpstarter.client.connection import STREAM_LINGER_SECONDS
from jumpstarter.client.progress import Progress
from jumpstarter.common.tasks import background_tasks
from jumpstarter.streams.channel import ThreadChannel
from jumpstarter.streams.frames import MAX_FRAME

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
        self._received: deque[bytes] = deque()
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

    def receive(self, max_bytes: int = MAX_FRAME) -> bytes:
        """Data from the driver, at most `max_bytes`; raises EndOfStream when it has sent all."""
        if not self._received:
            self._received.extend(self._incoming.get_batch())
        chunk = self._received.popleft()
        if len(chunk) > max_bytes:
            self._received.appendleft(chunk[max_bytes:])
            chunk = chunk[:max_bytes]
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
            sending = Progress()
            tasks.start_soon(_pump_out, outgoing, stream, sending)
            tasks.start_soon(_pump_in, stream, incoming)
            yield BlockingStream(outgoing, incoming)
            # Leaving normally: deliver what the caller sent before closing, unless the driver
            # stopped taking it.
            outgoing.finish()
            await sending.wait(STREAM_LINGER_SECONDS)
    finally:
        outgoing.abort()
        incoming.abort()


async def _pump_out(outgoing: ThreadChannel[bytes], stream: Any, progress: Progress) -> None:
    try:
        while True:
            try:
                batch = await outgoing.aget_batch()
            except EndOfStream:
                await stream.send_eof()
                return
            # Coalesce what queued up while the last send was in flight: fewer, larger frames.
            for frame in _frames(batch):
                await stream.send(frame)
                progress.advanced()
    except (BrokenResourceError, ClosedResourceError):
        outgoing.abort()  # the next send() in the thread fails
    finally:
        progress.finish()


def _frames(chunks: list[bytes]) -> Iterator[bytes]:
    """The chunks joined into pieces of up to MAX_FRAME bytes (larger chunks stay whole)."""
    pending: list[bytes] = []
    size = 0
    for chunk in chunks:
        if pending and size + len(chunk) > MAX_FRAME:
            yield pending[0] if len(pending) == 1 else b"".join(pending)
            pending, size = [], 0
        pending.append(chunk)
        size += len(chunk)
    if pending:
        yield pending[0] if len(pending) == 1 else b"".join(pending)


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
