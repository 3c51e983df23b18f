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

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable, Hashable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager, suppress
from typing import Any, cast
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

__all__ = ["STOP_GRACE_SECONDS", "DriverStreamBroken", "Session"]

logger = logging.getLogger(__name__)

STOP_GRACE_SECONDS = 10.0
"""How long a session that ends waits for driver code still running, and then for the drivers'
close(), before it leaves them behind (stuck hardware must not keep an exporter from stopping)."""


class Session(anyio.AsyncContextManagerMixin):
    """Serves one driver tree: its lifecycle, calls, byte streams, resources and logs."""

    def __init__(self, root: Driver, *, stop_grace: float | None = STOP_GRACE_SECONDS) -> None:
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
        self._names: dict[int, str] = {}
        for place in self.places:
            self._names.setdefault(id(place.node), place.name or "(root)")
        self._stop_grace = stop_grace
        self._workers = WorkerThreads()
        self._resources = ResourceRegistry()
        self._logs = LogBroadcast()

    # -- lifecycle -------------------------------------------------------------------

    @asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncIterator[Session]:
        async with AsyncExitStack() as stack:
            stack.enter_context(self._logs.installed())
            reset: list[Driver] = []  # the drivers to close on exit
            stack.push_async_callback(self._stop, reset)
            with exits_contained():
                # Each driver once (an alias appears twice), parents first.
                for driver in {id(place.node): place.node for place in self.places}.values():
                    reset.append(driver)
                    await self._workers.run(driver.reset, label=(driver, "reset"))
            yield self

    async def _stop(self, reset: list[Driver]) -> None:
        """Wait for the driver code still running (up to the grace), then close the drivers that
        were reset, children first, except those whose code still runs."""
        with anyio.CancelScope(shield=True):
            stuck = await self._workers.aclose(self._stop_grace)
            busy = {id(_driver_of(label)) for label, _ in stuck}
            if stuck:
                logger.warning(
                    "driver code still running %.0f s after the session began to end, left behind: %s",
                    self._stop_grace,
                    "; ".join(f"{self._describe(label)} (running for {seconds:.0f} s)" for label, seconds in stuck),
                )
            closing = [(driver, self._names[id(driver)]) for driver in reversed(reset) if id(driver) not in busy]
            await close_drivers(closing, self._stop_grace)

    def running_calls(self) -> list[str]:
        """The driver code running now, such as ``Relay.on() of driver 'power' (running for 3 s)``."""
        return [f"{self._describe(label)} (running for {seconds:.0f} s)" for label, seconds in self._workers.running()]

    def _describe(self, label: object) -> str:
        driver, method = cast("tuple[Driver, str]", label)
        return f"{type(driver).__name__}.{method}() of driver {self._names.get(id(driver), '?')!r}"

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

    async def call(
        self, uuid: str, method: str, args: list[Any], kwargs: dict[str, Any], *, caller: Hashable = None
    ) -> Any:
        """Run the exported method `method` of driver `uuid`; return its result.

        `caller` (a client connection) shares the worker threads fairly with the other callers."""
        driver = self.driver(uuid)
        # As `iterate`, with the context managers spelled out: this is the path of every call.
        resources = self._resources
        token = resources.make_current()
        try:
            exported = lookup(driver, method, CallKind.UNARY)
            bound_args, bound_kwargs = bind_arguments(exported, driver, args, kwargs)
            try:
                return await call_unary(exported, driver, bound_args, bound_kwargs, self._workers, caller)
            finally:
                if resources.any_open and (args or kwargs):
                    await resources.release_unused([*args, *kwargs.values()])
        except Exception as error:
            _log_unexpected(error, driver, method)
            raise
        finally:
            resources.reset_current(token)

    @asynccontextmanager
    async def iterate(
        self,
        uuid: str,
        method: str,
        args: list[Any],
        kwargs: dict[str, Any],
        encode: Callable[[Any], Message],
        *,
        caller: Hashable = None,
    ) -> AsyncIterator[ThreadChannel[Message]]:
        """Run the exported generator `method` of driver `uuid`; yield a channel of its items,
        each already encoded with `encode` (see `jumpstarter.exporter._dispatch.iterate_streaming`).
        The generator's error, if any, is raised by the channel after the items before it."""
        driver = self.driver(uuid)
        with self._resources.current(), _unexpected_errors_logged(driver, method):
            exported = lookup(driver, method, CallKind.STREAMING)
            bound_args, bound_kwargs = bind_arguments(exported, driver, args, kwargs)
            streaming = iterate_streaming(exported, driver, bound_args, bound_kwargs, self._workers, encode, caller)
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


async def close_drivers(drivers: list[tuple[Driver, str]], grace: float | None) -> None:
    """Close `drivers` in order, in a thread of their own; give up waiting after `grace` seconds
    (a close() that hangs is left behind, with the drivers after it, and said so)."""
    loop = asyncio.get_running_loop()
    closed = loop.create_future()
    at: list[tuple[Driver, str]] = []

    def close_all() -> None:
        try:
            for driver, name in drivers:
                at[:] = [(driver, name)]
                try:
                    driver.close()
                except (Exception, *EXITS):
                    # One driver failing to close must not keep the others open.
                    logger.exception("closing %s driver %r failed", type(driver).__name__, name)
        finally:
            with suppress(RuntimeError):  # the loop is gone: nobody waits
                loop.call_soon_threadsafe(_settle, closed)

    threading.Thread(target=close_all, name="jumpstarter-close", daemon=True).start()
    try:
        with anyio.CancelScope(shield=True):
            await asyncio.wait_for(asyncio.shield(closed), grace)
    except TimeoutError:
        driver, name = at[0]
        rest = drivers[drivers.index((driver, name)) + 1 :]
        logger.warning(
            "%s.close() of driver %r has not returned after %.0f s: left behind%s",
            type(driver).__name__,
            name,
            grace,
            f", with {', '.join(repr(other) for _, other in rest)} not closed" if rest else "",
        )


@contextmanager
def _unexpected_errors_logged(driver: Driver, method: str) -> Iterator[None]:
    """Log what a driver raised that the client will see only as an unknown error, or cut short."""
    try:
        yield
    except Exception as error:
        _log_unexpected(error, driver, method)
        raise


def _log_unexpected(error: Exception, driver: Driver, method: str) -> None:
    if not isinstance(error, CallRefused):
        status = status_for(error)
        if status.code in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL) or (
            len(str(error)) > MAX_DETAILS_CHARACTERS
        ):
            logger.warning(
                "%s.%s() raised %s: %s", type(driver).__name__, method, type(error).__name__, error, exc_info=error
            )


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


def _driver_of(label: object) -> Driver:
    # The workers' label of a driver call is (driver, method name).
    return cast("tuple[Driver, str]", label)[0]


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
