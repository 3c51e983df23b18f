"""`FrameStream`: a byte stream over one `RouterService.Stream` call.

Each direction carries DATA frames and ends with a GOAWAY frame (a half-close), so one
side can finish sending and still receive. Both ends of the call use the same class: the
client with a `grpc.aio.StreamStreamCall`, the exporter with the servicer context.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from anyio import BrokenResourceError, ClosedResourceError, EndOfStream
from anyio.abc import ByteStream

from jumpstarter.v1 import router_pb2

# Larger writes are split into frames of this size; it stays under the 4 MiB message
# limit of older peers.
MAX_FRAME = 1 << 20

_DATA = router_pb2.FRAME_TYPE_DATA
_GOAWAY = router_pb2.FRAME_TYPE_GOAWAY
_RST_STREAM = router_pb2.FRAME_TYPE_RST_STREAM
_RPC_ERRORS = (grpc.aio.AioRpcError, asyncio.InvalidStateError, grpc.aio.UsageError)


class FrameStream(ByteStream):
    """The byte stream of a RouterService.Stream call, on either side of it."""

    def __init__(self, call: Any, *, client_side: bool) -> None:
        self._call = call
        self._client_side = client_side
        self._frame = router_pb2.StreamRequest if client_side else router_pb2.StreamResponse
        self._leftover = b""
        self._received_eof = False
        self._sent_eof = False
        self._closed = False

    async def receive(self, max_bytes: int = MAX_FRAME) -> bytes:
        if self._leftover:
            chunk, self._leftover = self._leftover[:max_bytes], self._leftover[max_bytes:]
            return chunk
        while not self._received_eof:
            if self._closed:
                raise ClosedResourceError
            try:
                frame = await self._call.read()
            except _RPC_ERRORS as error:
                raise BrokenResourceError(_describe(error)) from error
            if frame is grpc.aio.EOF:
                break
            if frame.frame_type == _DATA:
                if frame.payload:  # empty DATA frames carry nothing; they are not an end of stream
                    payload = frame.payload
                    if len(payload) > max_bytes:
                        payload, self._leftover = payload[:max_bytes], payload[max_bytes:]
                    return payload
            elif frame.frame_type == _GOAWAY:
                break
            elif frame.frame_type == _RST_STREAM:
                raise BrokenResourceError("the peer aborted the stream")
            # PING and unknown frame types carry no data.
        self._received_eof = True
        raise EndOfStream

    async def send(self, item: bytes) -> None:
        if self._closed or self._sent_eof:
            raise ClosedResourceError
        view = memoryview(item)
        for offset in range(0, len(view), MAX_FRAME):
            try:
                await self._call.write(self._frame(payload=bytes(view[offset : offset + MAX_FRAME])))
            except _RPC_ERRORS as error:
                raise BrokenResourceError(_describe(error)) from error

    async def send_eof(self) -> None:
        if self._sent_eof or self._closed:
            return
        self._sent_eof = True
        try:
            await self._call.write(self._frame(frame_type=_GOAWAY))
            if self._client_side:
                await self._call.done_writing()
        except _RPC_ERRORS:
            pass  # the call already ended: the peer sees the end of the stream either way

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._client_side and not self._call.done():
            self._call.cancel()


def _describe(error: BaseException) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        return error.details() or error.code().name
    return str(error) or type(error).__name__
