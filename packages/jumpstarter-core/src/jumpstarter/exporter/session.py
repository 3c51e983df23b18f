"""`Session`: one driver tree in service, with no transport of its own.

A session resets the drivers of its tree when it starts and closes them when it ends; in
between it runs their exported methods (`call`, `iterate`), opens their byte streams
(`open_stream`) and client resources (`open_resource`), and hands their log records to
whoever listens (`logs`). It owns the worker threads that run blocking driver code.

It knows nothing of gRPC: the exporter's servicer (`jumpstarter.exporter._servicer`)
decodes requests into these calls and encodes what they return (`jumpstarter.common.wire`).

    async with Session(root) as session:
        result = await session.call(str(root.uuid), "ping", [], {})
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from typing import Any
from uuid import UUID, uuid4

import anyio
import grpc
from anyio.abc import AnyByteStream, ObjectStream
from google.protobuf.message import Message

from jumpstarter.common.handles import ClientStreamResource
from jumpstarter.common.wire import MAX_DETAILS_CHARACTERS, CallRefused, status_for
from jumpstarter.driver._resources import ResourceRegistry
from jumpstarter.driver.base import Driver
from jumpstarter.driver.decorators import CallKind
from jumpstarter.driver.tree import Place, walk_tree
from jumpstarter.exporter._containment import EXITS, exits_contained
from jumpstarter.exporter._dispatch import bind_arguments, call_unary, iterate_streaming, lookup
from jumpstarter.exporter._logs import LogBroadcast
from jumpstarter.exporter._workers import WorkerThreads
from jumpstarter.streams.channel import ThreadChannel
from jumpstarter.v1 import jumpstarter_pb2

__all__ = ["DriverStreamBroken", "Session"]

logger = logging.getLogger(__name__)


class Session(anyio.AsyncContextManagerMixin):
    """Serves one driver tree: its lifecycle, calls, byte streams, resources and logs."""

    def __init__(self, root: Driver) -> None:
        self.uuid = uuid4()
        self.root = root
        self.places: list[Place[Driver]] = list(walk_tree(root))
        """The drivers of the tree depth-first, parents first (an alias appears under each name)."""
        self._drivers: dict[UUID, Driver] = {}
        for place in self.places:
            if self._drivers.setdefault(place.node.uuid, place.node) is not place.node:
                raise ValueError(f"two drivers of the tree share the uuid {place.node.uuid}")
        # Calls name drivers by their uuid's text, almost always in the canonical form.
        self._drivers_by_text = {str(uuid): driver for uuid, driver in self._drivers.items()}
        self._workers = WorkerThreads()
        self._resources = ResourceRegistry()
        self._logs = LogBroadcast()

    # -- lifecycle -------------------------------------------------------------------

    @asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncIterator[Session]:
        async with AsyncExitStack() as stack:
            stack.enter_context(self._logs.installed())
            reset: list[tuple[Driver, str]] = []  # the drivers to close on exit, children first
            stack.push_async_callback(self._stop, reset)
            with exits_contained():
                await self._workers.run(self._reset_drivers, reset)
            yield self

    def _reset_drivers(self, reset: list[tuple[Driver, str]]) -> None:
        """Reset each driver once (an alias appears twice), parents first."""
        seen: set[int] = set()
        for place in self.places:
            if id(place.node) not in seen:
                seen.add(id(place.node))
                reset.append((place.node, place.name or "(root)"))
                place.node.reset()

    async def _stop(self, reset: list[tuple[Driver, str]]) -> None:
        with anyio.CancelScope(shield=True):
            # Driver code still running finishes before the drivers are closed.
            await self._workers.aclose()
            await anyio.to_thread.run_sync(_close_drivers, reset)

    # -- calls -----------------------------------------------------------------------

    def driver(self, uuid: str) -> Driver:
        """The driver named by `uuid` (text); CallRefused (NOT_FOUND) if the tree has none."""
        driver = self._drivers_by_text.get(uuid)
        if driver is not None:
            return driver
        try:
            return self._drivers[UUID(uuid)]  # another spelling of a uuid, such as upper case
        except (ValueError, KeyError):
            raise CallRefused(
                grpc.StatusCode.NOT_FOUND,
                f"no driver with uuid {uuid!r} in this session; reconnect to get the current driver tree",
            ) from None

    async def call(self, uuid: str, method: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """Run the exported method `method` of driver `uuid`; return its result."""
        driver = self.driver(uuid)
        with self._resources.current(), _unexpected_errors_logged(driver, method):
            exported = lookup(driver, method, CallKind.UNARY)
            bound_args, bound_kwargs = bind_arguments(exported, driver, args, kwargs)
            try:
                return await call_unary(exported, driver, bound_args, bound_kwargs, self._workers)
            finally:
                await self._resources.release_unused([*args, *kwargs.values()])

    @asynccontextmanager
    async def iterate(
        self, uuid: str, method: str, args: list[Any], kwargs: dict[str, Any], encode: Callable[[Any], Message]
    ) -> AsyncIterator[ThreadChannel[Message]]:
        """Run the exported generator `method` of driver `uuid`; yield a channel of its items,
        each already encoded with `encode` (see `jumpstarter.exporter._dispatch.iterate_streaming`).
        The generator's error, if any, is raised by the channel after the items before it."""
        driver = self.driver(uuid)
        with self._resources.current(), _unexpected_errors_logged(driver, method):
            exported = lookup(driver, method, CallKind.STREAMING)
            bound_args, bound_kwargs = bind_arguments(exported, driver, args, kwargs)
            streaming = iterate_streaming(exported, driver, bound_args, bound_kwargs, self._workers, encode)
            async with streaming as items:
                yield items

    @asynccontextmanager
    async def open_stream(self, uuid: str, method: str) -> AsyncIterator[AnyByteStream]:
        """Open the `@exportstream` method `method` of driver `uuid`. The stream's failures
        raise `DriverStreamBroken`, so that they are told apart from the other side's leaving."""
        driver = self.driver(uuid)
        with self._resources.current(), _unexpected_errors_logged(driver, method):
            exported = lookup(driver, method, CallKind.STREAM)
            with exits_contained():
                async with exported.function(driver) as stream:
                    yield _DriverSide(stream)

    @asynccontextmanager
    async def open_resource(
        self, uuid: str, content_encoding: str | None
    ) -> AsyncIterator[tuple[ClientStreamResource, ObjectStream[bytes]]]:
        """Open a client resource for driver `uuid`; yield its handle (for the client to pass to
        a call) and the session's end of it. The driver opens its end with `Driver.resource`."""
        driver = self.driver(uuid)
        with _unexpected_errors_logged(driver, "resource"):
            handle, stream = self._resources.create(driver, content_encoding)
            try:
                async with stream:
                    yield handle, stream
            finally:
                self._resources.discard(handle)

    # -- logs ------------------------------------------------------------------------

    @contextmanager
    def logs(self, name: str | None = None) -> Iterator[ThreadChannel[jumpstarter_pb2.LogStreamResponse]]:
        """A channel of the log records emitted from now until the context exits.

        A consumer with a `name` can ask for a barrier (`log_barrier`).
        """
        with self._logs.consume(name) as records:
            yield records

    def log_barrier(self, name: str) -> None:
        """Queue a marker for the consumer `name`, after every record emitted so far."""
        self._logs.barrier(name)


def _close_drivers(reset: list[tuple[Driver, str]]) -> None:
    """Close the drivers whose reset ran, children first."""
    for driver, name in reversed(reset):
        try:
            driver.close()
        except (Exception, *EXITS):
            # One driver failing to close must not keep the others open.
            logger.exception("closing %s driver %r failed", type(driver).__name__, name)


@contextmanager
def _unexpected_errors_logged(driver: Driver, method: str) -> Iterator[None]:
    """Log what a driver raised that the client will see only as an unknown error, or cut short."""
    try:
        yield
    except Exception as error:
        if not isinstance(error, CallRefused):
            status = status_for(error)
            if status.code in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL) or (
                len(str(error)) > MAX_DETAILS_CHARACTERS
            ):
                logger.warning(
                    "%s.%s() raised %s: %s", type(driver).__name__, method, type(error).__name__, error, exc_info=error
                )
        raise


class DriverStreamBroken(ConnectionError):
    """The driver's side of a stream failed (a target that reset the connection, say)."""


class _DriverSide(ObjectStream[bytes]):
    """A driver's stream whose failures are told apart from the client's leaving."""

    def __init__(self, stream: AnyByteStream) -> None:
        self._stream = stream

    async def receive(self) -> bytes:
        with _driver_failures():
            return await self._stream.receive()

    async def send(self, item: bytes) -> None:
        with _driver_failures():
            await self._stream.send(item)

    async def send_eof(self) -> None:
        with _driver_failures():
            await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()  # (the driver's own context manager closes it as well)


@contextmanager
def _driver_failures() -> Iterator[None]:
    try:
        yield
    except (anyio.BrokenResourceError, anyio.ClosedResourceError) as error:
        cause = error.__cause__ or error.__context__
        reason = str(error) or (str(cause) if cause else "") or type(error).__name__
        raise DriverStreamBroken(f"the driver's stream broke: {reason}") from error
