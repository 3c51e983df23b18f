"""The client's end of large bytes values that travel beside their call (see `jumpstarter.common.wire`).

`uploaded` sends each large argument over a stream of its own and keeps the streams open
while the call runs (the exporter holds each value until the call takes it); `downloaded`
fetches each large result. A result is received into one buffer that becomes the `bytes`
object returned, without a copy.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from typing import Any

import anyio
import grpc

from jumpstarter.client.text import printable
from jumpstarter.common.exceptions import DriverConnectionError, DriverError
from jumpstarter.common.handles import EOF_ACK_METADATA_KEY, BulkDownloadRequest, BulkUploadRequest
from jumpstarter.common.protocol import BULK_FRAME_BYTES
from jumpstarter.common.wire import BulkValues, error_from_status
from jumpstarter.streams.frames import FrameStream

# Opens a RouterService.Stream with this `request` metadata (JSON); returns the call once it is open.
OpenStream = Callable[..., Awaitable[tuple[Any, dict[str, str]]]]


@asynccontextmanager
async def uploaded(open_stream: OpenStream, bulk: BulkValues) -> AsyncIterator[None]:
    """Upload the values of `bulk`; within the block, the exporter holds them for the call that names them."""
    async with AsyncExitStack() as streams:
        for uuid, view in bulk.values.items():
            request = BulkUploadRequest(uuid=uuid, size=view.nbytes)
            call, _ = await open_stream(request.to_json(), "upload a large argument", (EOF_ACK_METADATA_KEY, "1"))
            stream = await streams.enter_async_context(
                FrameStream(call, client_side=True, frame_bytes=BULK_FRAME_BYTES)
            )
            with suppress(anyio.BrokenResourceError):  # the exporter refused it: its status says why
                await stream.send(view)
            await stream.send_eof()
            if not await stream.drain_until_acknowledged():
                raise await _failure(
                    call, "upload a large argument", f"the exporter did not take all {view.nbytes} bytes"
                )
        yield


async def downloaded(open_stream: OpenStream, references: dict[str, int]) -> dict[str, bytes]:
    """The bytes of each large result named in `references` (uuid: size)."""
    values: dict[str, bytes] = {}
    for uuid, size in references.items():
        call, _ = await open_stream(BulkDownloadRequest(uuid=uuid).to_json(), "download a large result")
        async with FrameStream(call, client_side=True) as stream:
            buffer = io.BytesIO()  # grows in place as bytes arrive, and getvalue() hands its buffer over
            received = 0
            try:
                while True:
                    chunk = await stream.receive(BULK_FRAME_BYTES)
                    received += len(chunk)
                    if received > size:
                        raise DriverConnectionError(f"the exporter sent more than the {size} bytes of a large result")
                    buffer.write(chunk)
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                pass
            if received != size:
                raise await _failure(
                    call, "download a large result", f"the exporter sent {received} of its {size} bytes"
                )
            values[uuid] = buffer.getvalue()
            buffer.close()
    return values


async def _failure(call: Any, what: str, otherwise: str) -> DriverError:
    """The error a bulk stream ended with, or `otherwise` if it ended well."""
    code = await call.code()
    if code == grpc.StatusCode.OK:
        return DriverConnectionError(f"{what}: {otherwise}")
    details = await call.details()
    return error_from_status(code, details and printable(details), await call.trailing_metadata(), what)
