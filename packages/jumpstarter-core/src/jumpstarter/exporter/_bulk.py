"""`BulkStore`: the exporter's end of large bytes values that travel beside their call.

A client uploads each large argument over a stream of its own before the call
(`receive`); the call's decoding takes it (`take`). A large result waits (`hold`) until
the client downloads it (`send`). See `jumpstarter.common.wire` for the protocol.

Each value is received into one buffer that grows as the bytes arrive and becomes the
`bytes` object the driver gets, without a copy; a result is sent from the driver's own
object. So an exporter holds about one copy of each value.

Every value has an owner: an upload's stream holds its value until a call takes it (a
client that goes away cancels the stream, which drops it), and a result not downloaded
within `RESULT_SECONDS` is dropped. Uploads in progress may reserve at most `budget` bytes
in all, so that clients cannot make the exporter hold more than that.
"""

from __future__ import annotations

import asyncio
import io
import threading
from dataclasses import dataclass

import anyio
import grpc

from jumpstarter.common.handles import BulkDownloadRequest, BulkUploadRequest
from jumpstarter.common.protocol import BULK_FRAME_BYTES, BULK_MAX_BYTES
from jumpstarter.common.wire import BulkValues, CallRefused
from jumpstarter.streams.frames import FrameStream

__all__ = ["RESULT_SECONDS", "UPLOAD_BUDGET_BYTES", "BulkStore"]

UPLOAD_BUDGET_BYTES = 2 * BULK_MAX_BYTES
"""The bytes that uploads in progress, or waiting for their call, may reserve in all."""
RESULT_SECONDS = 60.0
"""How long a large result waits for its client to download it."""


@dataclass(eq=False)
class _Upload:
    taken: asyncio.Future[None]
    """Set once a call took the value: the upload's stream may end."""
    value: bytes | None = None
    done: bool = False


class BulkStore:
    """The large values of one exporter's calls, between their streams and their calls."""

    def __init__(self) -> None:
        self._budget = UPLOAD_BUDGET_BYTES
        self._result_seconds = RESULT_SECONDS
        self._reserved = 0
        self._uploads: dict[str, _Upload] = {}
        self._results: dict[str, tuple[memoryview, asyncio.TimerHandle]] = {}
        # `take` may run in the thread that parses a large request.
        self._lock = threading.Lock()

    # -- arguments: uploaded, then taken by their call -----------------------------------

    async def receive(self, frames: FrameStream, request: BulkUploadRequest) -> None:
        """Receive the bytes of `request` from the client, then hold them until a call takes them
        (returns then) or the client cancels the stream (the value is dropped)."""
        uuid, size = str(request.uuid), request.size
        if size > BULK_MAX_BYTES:
            raise CallRefused(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"a bulk value of {size >> 20} MiB is over the {BULK_MAX_BYTES >> 20} MiB one value may take",
            )
        upload = _Upload(asyncio.get_running_loop().create_future())
        with self._lock:
            if uuid in self._uploads:
                raise CallRefused(grpc.StatusCode.ALREADY_EXISTS, f"bulk value {uuid} is being uploaded already")
            if self._reserved + size > self._budget:
                raise CallRefused(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"this exporter holds {self._reserved >> 20} MiB of large call arguments already, and takes "
                    f"{self._budget >> 20} MiB at most: try again once those calls have run",
                )
            self._reserved += size
            self._uploads[uuid] = upload
        try:
            upload.value = await _receive_exactly(frames, size)
            await frames.acknowledge_eof()  # the client may send its call now
            await upload.taken
        finally:
            with self._lock:
                del self._uploads[uuid]
                self._reserved -= size
            upload.value = None

    def take(self, uuid: str, size: int) -> bytes:
        """The bytes of the uploaded value `uuid`, for the call that names it (once); CallRefused
        if it did not arrive. Safe from any thread."""
        with self._lock:
            upload = self._uploads.get(uuid)
            value = None if upload is None or upload.done else upload.value
            if upload is None or value is None or len(value) != size:
                raise CallRefused(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"the call names a large argument ({size} bytes) that the exporter has not received, or that "
                    "another call took: upload it before the call, once per call",
                )
            upload.done = True
        upload.taken.get_loop().call_soon_threadsafe(_settle, upload.taken)
        return value

    # -- results: held, then downloaded by the client -------------------------------------

    def hold(self, bulk: BulkValues) -> None:
        """Keep the large values of a result for the client to download, for a while."""
        loop = asyncio.get_running_loop()
        for uuid, view in bulk.values.items():
            expiry = loop.call_later(self._result_seconds, self._results.pop, uuid, None)
            self._results[uuid] = (view, expiry)

    async def send(self, frames: FrameStream, request: BulkDownloadRequest) -> None:
        """Send the bytes of the result `request` names to the client (once)."""
        entry = self._results.pop(str(request.uuid), None)
        if entry is None:
            raise CallRefused(
                grpc.StatusCode.NOT_FOUND,
                f"no large result {request.uuid} waits here: a result is downloaded once, within "
                f"{self._result_seconds:g} s of its call",
            )
        view, expiry = entry
        expiry.cancel()
        await frames.send(view)
        await frames.send_eof()

    @property
    def held_results(self) -> int:
        """How many results wait for their download (for tests)."""
        return len(self._results)


async def _receive_exactly(frames: FrameStream, size: int) -> bytes:
    """The `size` bytes that `frames` carries up to its end, as one bytes object built without a copy.

    A BytesIO grows its buffer as bytes arrive (a large buffer grows in place, by remapping)
    and `getvalue()` hands that very buffer over as the bytes object.
    """
    buffer = io.BytesIO()
    received = 0
    while True:
        try:
            chunk = await frames.receive(BULK_FRAME_BYTES)
        except anyio.EndOfStream:
            break
        received += len(chunk)
        if received > size:
            raise CallRefused(
                grpc.StatusCode.INVALID_ARGUMENT, f"the upload carries more than the {size} bytes it announced"
            )
        buffer.write(chunk)
    if received != size:
        raise CallRefused(
            grpc.StatusCode.INVALID_ARGUMENT, f"the upload ended after {received} of the {size} bytes it announced"
        )
    value = buffer.getvalue()
    buffer.close()
    return value


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
