"""`FrameStream`: a byte stream over one `RouterService.Stream` call.

Each direction carries DATA frames and ends with a GOAWAY frame (a half-close), so one
side can finish sending and still receive. Both ends of the call use the same class: the
client with a `grpc.aio.StreamStreamCall`, the exporter with the servicer context.

Closing a stream cancels the call, and a cancelled call drops what the exporter has not
read yet. So that closing never loses data, a client may ask (request metadata
``jumpstarter-eof-ack: 1``) for a PING frame once the exporter has handed everything up to
the client's GOAWAY to the driver, and wait for it before cancelling
(`drain_until_acknowledged`). Peers that do not know this never ask, and ignore PINGs.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from typing import Any, TypeAlias, cast

import anyio
import grpc
from anyio import BrokenResourceError, ClosedResourceError, EndOfStream
from anyio.abc import ByteStream

from jumpstarter.v1 import router_pb2

# Larger writes are split into frames of this size; it stays under the 4 MiB message
# limit of older peers.
MAX_FRAME = 1 << 19

_DATA = router_pb2.FRAME_TYPE_DATA
_GOAWAY = router_pb2.FRAME_TYPE_GOAWAY
_PING = router_pb2.FRAME_TYPE_PING
_RST_STREAM = router_pb2.FRAME_TYPE_RST_STREAM
# Any failure to read or write the call means the stream is broken (gRPC raises several
# exception types, some of them internal, once the peer is gone).
_RPC_ERRORS = (Exception,)

# The two ends of a RouterService.Stream call: the client's call object, the exporter's servicer
# context. (StreamRequest goes one way and StreamResponse the other; they carry the same fields.)
StreamCall: TypeAlias = "grpc.aio.StreamStreamCall[Any, Any] | grpc.aio.ServicerContext[Any, Any]"
_ClientCall: TypeAlias = "grpc.aio.StreamStreamCall[Any, Any]"


class FrameStream(ByteStream):
    """The byte stream of a RouterService.Stream call, on either side of it."""

    def __init__(self, call: StreamCall, *, client_side: bool, frame_bytes: int = MAX_FRAME) -> None:
        """`frame_bytes`: the largest frame sent (larger frames, fewer messages, where the peer takes them)."""
        self._call = call
        self._client_side = client_side
        self._frame_bytes = frame_bytes
        self._frame: type[router_pb2.StreamRequest] | type[router_pb2.StreamResponse] = (
            router_pb2.StreamRequest if client_side else router_pb2.StreamResponse
        )
        self._leftover = b""
        self._received_eof = False
        self._sent_eof = False
        self._acknowledged = False  # the exporter acknowledged our end of stream
        self._closed = False
        # The call takes one write at a time; an acknowledgement may come from another task.
        self._writing = anyio.Lock()
        # A read in progress. Cancelling a gRPC read cancels the whole call, so a receive()
        # that is cancelled leaves its read running for the next receive() instead.
        self._pending_read: asyncio.Future[Any] | None = None

    async def _read(self) -> Any:
        if self._pending_read is None:
            self._pending_read = asyncio.ensure_future(self._call.read())
        pending = self._pending_read
        try:
            frame = await asyncio.shield(pending)
        except _RPC_ERRORS as error:
            self._pending_read = None
            raise BrokenResourceError(_describe(error)) from error
        except asyncio.CancelledError:
            if not pending.cancelled():
                # This task is cancelled; the read, still going on or done with a frame just
                # as the cancellation came, is kept for the next receive().
                raise
            # gRPC ends the reads of a cancelled call this way: the stream is over.
            self._pending_read = None
            raise BrokenResourceError("the stream was cancelled") from None
        self._pending_read = None
        return frame

    async def receive(self, max_bytes: int = MAX_FRAME) -> bytes:
        if self._leftover:
            chunk, self._leftover = self._leftover[:max_bytes], self._leftover[max_bytes:]
            return chunk
        while not self._received_eof:
            if self._closed:
                raise ClosedResourceError
            frame = await self._read()
            if frame is grpc.aio.EOF:
                break
            if frame.frame_type == _DATA:
                payload: bytes = frame.payload  # (each access to the field copies the bytes)
                if payload:  # empty DATA frames carry nothing; they are not an end of stream
                    if len(payload) > max_bytes:
                        payload, self._leftover = payload[:max_bytes], payload[max_bytes:]
                    return payload
            elif frame.frame_type == _GOAWAY:
                break
            elif frame.frame_type == _RST_STREAM:
                raise BrokenResourceError("the peer aborted the stream")
            elif frame.frame_type == _PING:
                self._acknowledged = True  # see drain_until_acknowledged()
            # PING and unknown frame types carry no data.
        self._received_eof = True
        raise EndOfStream

    async def send(self, item: bytes | bytearray | memoryview) -> None:
        # Any flat buffer: a large one is framed from views of it, without a copy of the whole.
        if self._closed or self._sent_eof:
            raise ClosedResourceError
        frame_bytes = self._frame_bytes
        if len(item) <= frame_bytes:
            if item:  # an empty DATA frame would only be noise
                await self._write(self._frame(payload=bytes(item)))
            return
        view = memoryview(item)
        for offset in range(0, len(view), frame_bytes):
            await self._write(self._frame(payload=bytes(view[offset : offset + frame_bytes])))

    async def _write(self, frame: router_pb2.StreamRequest | router_pb2.StreamResponse) -> None:
        async with self._writing:
            try:
                await self._call.write(frame)
            except _RPC_ERRORS as error:
                raise BrokenResourceError(_describe(error)) from error
            except asyncio.CancelledError:
                if not self._call.cancelled():
                    raise
                # A write to a cancelled call: the stream is over (a cancellation of this
                # task, if that is what happened, is delivered again at its next await).
                raise BrokenResourceError("the stream was cancelled") from None

    async def send_eof(self) -> None:
        if self._sent_eof or self._closed:
            return
        self._sent_eof = True
        try:
            await self._write(self._frame(frame_type=_GOAWAY))
            if self._client_side:
                await cast(_ClientCall, self._call).done_writing()
        except (BrokenResourceError, *_RPC_ERRORS):
            pass  # the call already ended: the peer sees the end of the stream either way

    async def acknowledge_eof(self) -> None:
        """Exporter side: tell the client that everything it sent has reached the driver."""
        with suppress(BrokenResourceError):  # a client that is gone waits for nothing
            await self._write(self._frame(frame_type=_PING))

    async def drain_until_acknowledged(self) -> bool:
        """Client side, after send_eof(): discard what arrives until the exporter acknowledges
        the end of stream (True), or ends the call (False)."""
        if self._acknowledged:
            return True  # receive() came across the acknowledgement already
        while True:
            try:
                frame = await self._read()
            except BrokenResourceError:
                return False
            if frame is grpc.aio.EOF:
                return False
            if frame.frame_type == _PING:
                self._acknowledged = True
                return True

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._pending_read is not None:
            self._pending_read.cancel()
            self._pending_read.add_done_callback(_consume_outcome)
        if self._client_side and not self._call.done():
            cast(_ClientCall, self._call).cancel()


def _consume_outcome(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _describe(error: BaseException) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        return error.details() or error.code().name
    return str(error) or type(error).__name__
