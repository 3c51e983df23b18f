"""Client resources on the exporter side: bulk data that reaches a driver beside a call.

The client opens a resource stream for a driver (`create_client_resource`), passes the
handle it gets back as an ordinary call argument, and the driver method opens it with
`Driver.resource(handle)`. A handle is single-use; one that a call received but did not
open is released when the call ends (`release_unused_resources`), so the client never
waits for bytes that will not come.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any
from uuid import uuid4

from anyio import create_memory_object_stream
from anyio.abc import ObjectStream
from anyio.streams.stapled import StapledObjectStream

from jumpstarter.common.streams import ClientStreamResource, PresignedRequestResource, parse_resource_handle
from jumpstarter.driver.base import Driver
from jumpstarter.streams.encoding import EncodedStream

# Chunks buffered per direction between the session and the driver.
_BUFFERED_CHUNKS = 16


def create_client_resource(
    driver: Driver, content_encoding: str | None
) -> tuple[ClientStreamResource, ObjectStream[bytes]]:
    """Register a new resource on `driver`; return its handle and the session's end of it."""
    to_driver_send, to_driver_receive = create_memory_object_stream[bytes](_BUFFERED_CHUNKS)
    to_session_send, to_session_receive = create_memory_object_stream[bytes](_BUFFERED_CHUNKS)
    handle = ClientStreamResource(uuid=uuid4(), content_encoding=content_encoding)
    driver.resources[handle.uuid] = StapledObjectStream(to_session_send, to_driver_receive)
    return handle, StapledObjectStream(to_driver_send, to_session_receive)


@asynccontextmanager
async def open_resource(driver: Driver, handle: Any) -> AsyncIterator[Any]:
    resource = parse_resource_handle(handle)
    if isinstance(resource, PresignedRequestResource):
        from jumpstarter.exporter.presigned import open_presigned  # an HTTP client: loaded when needed

        async with open_presigned(resource) as stream:
            yield stream
        return
    stream = driver.resources.pop(resource.uuid, None)
    if stream is None:
        raise ValueError(
            f"resource {resource.uuid} is not open on {type(driver).__name__}: a handle is used once, "
            "by a call to the driver it was created for"
        )
    async with stream:
        yield EncodedStream(stream, resource.content_encoding) if resource.content_encoding else stream


async def release_unused_resources(drivers: Iterable[Driver], values: Iterable[Any]) -> None:
    """Close the resources that a finished call received as arguments but never opened.

    They are looked for on every driver of the session: a handle passed to the wrong
    driver is spent too, so that the client does not wait for it.
    """
    for value in values:
        if isinstance(value, dict) and value.get("kind") == "client_stream":
            try:
                resource = parse_resource_handle(value)
            except ValueError:
                continue
            for driver in drivers:
                stream = driver.resources.pop(resource.uuid, None)
                if stream is not None:
                    await stream.aclose()
