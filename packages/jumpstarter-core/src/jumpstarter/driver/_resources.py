"""Client resources on the driver side: bulk data that reaches a driver beside a call.

The client opens a resource stream for a driver, and the session serving the tree
registers it in its `ResourceRegistry` and answers with a handle. The client passes the
handle as an ordinary call argument, and the driver method opens it with
`Driver.resource(handle)`. A handle is single-use; one that a call received but did not
open is released when the call ends (`ResourceRegistry.release_unused`), so the client
never waits for bytes that will not come.

The registry belongs to the session, not to the drivers: the session makes it current
(`ResourceRegistry.current`, a context variable) while it runs driver code, and
`Driver.resource` finds it there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

from anyio import create_memory_object_stream
from anyio.abc import AnyByteStream, ObjectStream
from anyio.streams.stapled import StapledObjectStream

from jumpstarter.common.handles import (
    ClientStreamResource,
    PresignedRequestResource,
    is_client_stream_handle,
    parse_resource_handle,
)
from jumpstarter.streams.encoding import EncodedStream

if TYPE_CHECKING:
    from jumpstarter.driver.base import Driver

# Chunks buffered per direction between the session and the driver.
_BUFFERED_CHUNKS = 16

_current: ContextVar[ResourceRegistry] = ContextVar("jumpstarter_resources")


class ResourceRegistry:
    """The client resources of one session that are open and not yet used by a driver."""

    def __init__(self) -> None:
        # uuid -> (the driver the resource was opened for, the driver's end of it)
        self._open: dict[UUID, tuple[Driver, ObjectStream[bytes]]] = {}

    @contextmanager
    def current(self) -> Iterator[None]:
        """Make this the registry `Driver.resource` uses, in this context (driver code started here inherits it)."""
        token = self.make_current()
        try:
            yield
        finally:
            _current.reset(token)

    def make_current(self) -> Token[ResourceRegistry]:
        """`current` without a context manager (on the path of every call), for `_current.reset`."""
        return _current.set(self)

    @staticmethod
    def reset_current(token: Token[ResourceRegistry]) -> None:
        _current.reset(token)

    @property
    def any_open(self) -> bool:
        """Whether any resource is open: if none is, a finished call has nothing to release."""
        return bool(self._open)

    def create(self, driver: Driver, content_encoding: str | None) -> tuple[ClientStreamResource, ObjectStream[bytes]]:
        """Register a new resource for `driver`; return its handle and the session's end of it."""
        to_driver_send, to_driver_receive = create_memory_object_stream[bytes](_BUFFERED_CHUNKS)
        to_session_send, to_session_receive = create_memory_object_stream[bytes](_BUFFERED_CHUNKS)
        handle = ClientStreamResource(uuid=uuid4(), content_encoding=content_encoding)
        self._open[handle.uuid] = (driver, StapledObjectStream(to_session_send, to_driver_receive))
        return handle, StapledObjectStream(to_driver_send, to_session_receive)

    def take(self, driver: Driver, resource: ClientStreamResource) -> ObjectStream[bytes]:
        """The driver's end of `resource`, once; raise ValueError if it is not open for `driver`."""
        entry = self._open.get(resource.uuid)
        if entry is None or entry[0] is not driver:
            raise ValueError(
                f"resource {resource.uuid} is not open on {type(driver).__name__}: a handle is used once, "
                "by a call to the driver it was created for"
            )
        del self._open[resource.uuid]
        return entry[1]

    def discard(self, handle: ClientStreamResource) -> None:
        """Forget a resource whose stream ended (the driver's end, if never taken, goes with it)."""
        self._open.pop(handle.uuid, None)

    async def release_unused(self, values: Iterable[Any]) -> None:
        """Close the resources that a finished call received as arguments but never opened.

        A handle passed to the wrong driver is spent too, so that the client does not wait for it.
        """
        for value in values:
            if is_client_stream_handle(value):
                try:
                    resource = parse_resource_handle(value)
                except ValueError:
                    continue
                if not isinstance(resource, ClientStreamResource):
                    continue
                entry = self._open.pop(resource.uuid, None)
                if entry is not None:
                    await entry[1].aclose()


@asynccontextmanager
async def open_resource(driver: Driver, handle: Any) -> AsyncIterator[AnyByteStream]:
    """Open the resource a call of `driver` received (see `Driver.resource`)."""
    resource = parse_resource_handle(handle)
    if isinstance(resource, PresignedRequestResource):
        from jumpstarter.driver._presigned import open_presigned  # an HTTP client: loaded when needed

        async with open_presigned(resource) as presigned:
            yield presigned
        return
    registry = _current.get(None)
    if registry is None:
        raise ValueError(
            f"resource {resource.uuid} is not open on {type(driver).__name__}: client resources are open only "
            "during a call served by an exporter session; open the handle in the driver method that received it"
        )
    stream = registry.take(driver, resource)
    async with stream:
        yield EncodedStream(stream, resource.content_encoding) if resource.content_encoding else stream
