"""`Session`: one driver tree served over the jumpstarter.v1 protocol.

A session implements ExporterService (reports, calls, logs, status) and RouterService
(byte streams and resources) for the drivers of one tree. It owns the worker threads
that run blocking driver code and the log handler that feeds LogStream.

    async with Session(root) as session:
        async with session.serve_unix() as path:
            ...  # clients connect to unix://path
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from typing import Any, NoReturn
from uuid import UUID, uuid4

import anyio
import grpc
from google.protobuf import empty_pb2

from jumpstarter.common.protocol import (
    CAPABILITY_TYPED_VALUES,
    CLIENT_LABEL,
    ERROR_CLASS_METADATA_KEY,
    LEGACY_MAX_MESSAGE_BYTES,
    LOG_BARRIER_METADATA_KEY,
    LOG_CONSUMER_METADATA_KEY,
    NAME_LABEL,
    SERVER_OPTIONS,
)
from jumpstarter.common.streams import (
    ACCEPT_ENCODING_METADATA_KEY,
    EOF_ACK_METADATA_KEY,
    REQUEST_METADATA_KEY,
    RESOURCE_METADATA_KEY,
    DriverStreamRequest,
    parse_stream_request,
)
from jumpstarter.common.values import decode_json, decode_typed, fill_json, fill_typed
from jumpstarter.driver.base import Driver
from jumpstarter.driver.decorators import CallKind
from jumpstarter.exporter.dispatch import bind_arguments, call_unary, iterate_streaming, lookup
from jumpstarter.exporter.errors import (
    EXITS,
    MAX_DETAILS_CHARACTERS,
    StatusError,
    exits_contained,
    status_code_for,
    status_details_for,
)
from jumpstarter.exporter.logs import LogBroadcast
from jumpstarter.exporter.resources import create_client_resource, release_unused_resources
from jumpstarter.exporter.workers import WorkerThreads
from jumpstarter.streams.copy import splice
from jumpstarter.streams.frames import FrameStream
from jumpstarter.v1 import common_pb2, jumpstarter_pb2, jumpstarter_pb2_grpc, router_pb2_grpc, values_pb2

logger = logging.getLogger(__name__)

# How long stopping a server waits for the calls in progress.
STOP_GRACE_SECONDS = 1.0

# A batch of streamed items is sent once it reaches this many encoded bytes.
_BATCH_BYTES = 1 << 19
_BATCH_ITEMS = 1024


def walk(
    driver: Driver, parent: Driver | None = None, name: str | None = None
) -> Iterator[tuple[Driver, Driver | None, str | None]]:
    """A driver tree depth-first, parents first, as (driver, parent, name in parent)."""
    yield driver, parent, name
    for child_name, child in driver.children.items():
        yield from walk(child, driver, child_name)


def report(driver: Driver, parent: Driver | None, name: str | None) -> jumpstarter_pb2.DriverInstanceReport:
    labels = {**driver.labels, **driver.extra_labels(), CLIENT_LABEL: driver.client()}
    if name is not None:
        labels[NAME_LABEL] = name
    entry = jumpstarter_pb2.DriverInstanceReport(
        uuid=str(driver.uuid), labels=labels, methods_description=driver.methods_description
    )
    if parent is not None:
        entry.parent_uuid = str(parent.uuid)
    if driver.description:
        entry.description = driver.description
    return entry


class Session(jumpstarter_pb2_grpc.ExporterServiceServicer, router_pb2_grpc.RouterServiceServicer):
    """Serves one driver tree: its calls, byte streams, resources, logs and status."""

    def __init__(
        self,
        root: Driver,
        *,
        labels: dict[str, str] | None = None,
        status: int = common_pb2.EXPORTER_STATUS_LEASE_READY,
    ) -> None:
        self.uuid = uuid4()
        self.root = root
        self.labels = dict(labels or {})
        self._drivers: dict[UUID, Driver] = {}
        for driver, _, _ in walk(root):
            if self._drivers.setdefault(driver.uuid, driver) is not driver:
                raise ValueError(f"two drivers of the tree share the uuid {driver.uuid}")
        # Calls name drivers by their uuid's text, almost always in the canonical form.
        self._drivers_by_text = {str(uuid): driver for uuid, driver in self._drivers.items()}
        self._workers = WorkerThreads()
        self._reset_started: list[tuple[Driver, str]] = []  # closed on exit, in reverse
        self._logs = LogBroadcast()
        self._status = status
        self._status_message = ""
        self._status_version = 0
        self._previous_status: int | None = None

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> Session:
        self._logs.install()
        try:
            with exits_contained():
                await self._workers.run(self._reset_drivers)
        except BaseException:
            # The drivers reset so far, and the one that failed, are closed.
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            with anyio.CancelScope(shield=True):
                # Driver code still running finishes before the drivers are closed.
                await self._workers.aclose()
                await anyio.to_thread.run_sync(self._close_drivers)
        finally:
            self._logs.uninstall()

    def _unique_drivers(self) -> list[tuple[Driver, str]]:
        """Each driver of the tree once (an alias appears twice), parents first, with its name."""
        seen: set[int] = set()
        drivers = []
        for driver, _, name in walk(self.root):
            if id(driver) not in seen:
                seen.add(id(driver))
                drivers.append((driver, name or "(root)"))
        return drivers

    def _reset_drivers(self) -> None:
        for driver, name in self._unique_drivers():
            self._reset_started.append((driver, name))
            driver.reset()

    def _close_drivers(self) -> None:
        """Close the drivers whose reset ran, children first."""
        for driver, name in reversed(self._reset_started):
            try:
                driver.close()
            except (Exception, *EXITS):
                # One driver failing to close must not keep the others open.
                logger.exception("closing %s driver %r failed", type(driver).__name__, name)

    @asynccontextmanager
    async def serve_unix(self) -> AsyncIterator[str]:
        """Serve on a Unix socket in a new private (0700) directory; yield the socket's path."""
        with private_socket_path() as path:
            server = self.grpc_server()
            server.add_insecure_port(f"unix://{path}")
            await server.start()
            try:
                yield path
            finally:
                with anyio.CancelScope(shield=True):
                    # A grace period lets clients see a clean shutdown rather than an error;
                    # calls still running after it are cancelled.
                    await server.stop(grace=STOP_GRACE_SECONDS)

    def grpc_server(self, interceptors: list[Any] | None = None) -> grpc.aio.Server:
        """A gRPC server with this session's services, for the caller to add ports to."""
        server = grpc.aio.server(options=SERVER_OPTIONS, interceptors=interceptors)
        jumpstarter_pb2_grpc.add_ExporterServiceServicer_to_server(self, server)
        router_pb2_grpc.add_RouterServiceServicer_to_server(self, server)
        return server

    def update_status(self, status: int, message: str = "") -> None:
        self._previous_status, self._status = self._status, status
        self._status_message = message
        self._status_version += 1

    # -- ExporterService -------------------------------------------------------------

    async def GetReport(self, request: empty_pb2.Empty, context: grpc.aio.ServicerContext) -> Any:
        return jumpstarter_pb2.GetReportResponse(
            uuid=str(self.uuid),
            labels=self.labels,
            reports=[report(driver, parent, name) for driver, parent, name in walk(self.root)],
            capabilities=[CAPABILITY_TYPED_VALUES],
        )

    async def DriverCall(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        driver = None
        try:
            driver = self._driver(request.uuid)
            method = lookup(driver, request.method, CallKind.UNARY)
            typed, args, kwargs = _decode_arguments(request)
            bound_args, bound_kwargs = bind_arguments(method, driver, args, kwargs)
            try:
                result = await call_unary(method, driver, bound_args, bound_kwargs, self._workers)
            finally:
                await release_unused_resources(self._drivers.values(), [*args, *kwargs.values()])
            response = jumpstarter_pb2.DriverCallResponse()
            _encode_result(response.typed_result if typed else response.result, result, typed, method.name)
            if not typed:
                _check_legacy_size(response, method.name)
            return response
        except Exception as error:
            await _abort(context, driver, request.method, error)

    async def StreamingDriverCall(self, request: Any, context: grpc.aio.ServicerContext) -> None:
        driver = None
        try:
            driver = self._driver(request.uuid)
            method = lookup(driver, request.method, CallKind.STREAMING)
            typed, args, kwargs = _decode_arguments(request)
            bound_args, bound_kwargs = bind_arguments(method, driver, args, kwargs)
            encode = partial(_encode_item, typed=typed, method=method.name)
            streaming = iterate_streaming(method, driver, bound_args, bound_kwargs, self._workers, encode)
            async with streaming as items:
                while True:
                    try:
                        batch = await items.aget_batch(_BATCH_ITEMS)
                    except anyio.EndOfStream:
                        break
                    if typed:
                        await _write_typed_batch(context, batch)
                    else:
                        for response in batch:
                            await context.write(response)
        except Exception as error:
            await _abort(context, driver, request.method, error)

    async def LogStream(self, request: empty_pb2.Empty, context: grpc.aio.ServicerContext) -> None:
        name = dict(context.invocation_metadata() or ()).get(LOG_CONSUMER_METADATA_KEY)
        with self._logs.consume(name) as records:
            # Initial metadata tells the client that it receives every record from now on.
            await context.send_initial_metadata(())
            while True:
                for record in await records.aget_batch():
                    await context.write(record)

    async def Reset(self, request: Any, context: grpc.aio.ServicerContext) -> NoReturn:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Reset is not implemented by this exporter")
        raise AssertionError("unreachable")

    async def GetStatus(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        barrier = dict(context.invocation_metadata() or ()).get(LOG_BARRIER_METADATA_KEY)
        if barrier:
            self._logs.barrier(barrier)
        response = jumpstarter_pb2.GetStatusResponse(
            status=self._status, message=self._status_message, status_version=self._status_version
        )
        if self._previous_status is not None:
            response.previous_status = self._previous_status
        return response

    async def EndSession(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return jumpstarter_pb2.EndSessionResponse(success=False, message="this session has no lease to end")

    # -- RouterService ---------------------------------------------------------------

    async def Stream(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> None:
        driver = None
        name = "stream"
        metadata = {key: value for key, value in context.invocation_metadata() or ()}
        try:
            async with FrameStream(context, client_side=False) as frames:
                try:
                    request = parse_stream_request(metadata.get(REQUEST_METADATA_KEY))
                except ValueError as error:
                    raise StatusError(grpc.StatusCode.INVALID_ARGUMENT, str(error)) from None
                driver = self._driver(str(request.uuid))
                if isinstance(request, DriverStreamRequest):
                    name = request.method
                    acknowledge = metadata.get(EOF_ACK_METADATA_KEY) == "1"
                    await _serve_driver_stream(context, frames, driver, request.method, acknowledge)
                else:
                    name = "resource"
                    await _serve_resource_stream(context, frames, driver, request.content_encoding)
        except Exception as error:
            await _abort(context, driver, name, error)

    # -- helpers ---------------------------------------------------------------------

    def _driver(self, uuid: str) -> Driver:
        driver = self._drivers_by_text.get(uuid)
        if driver is not None:
            return driver
        try:
            return self._drivers[UUID(uuid)]  # another spelling of a uuid, such as upper case
        except (ValueError, KeyError):
            raise StatusError(
                grpc.StatusCode.NOT_FOUND,
                f"no driver with uuid {uuid!r} in this session; reconnect to get the current driver tree",
            ) from None


async def _serve_driver_stream(
    context: grpc.aio.ServicerContext, frames: FrameStream, driver: Driver, name: str, acknowledge: bool
) -> None:
    method = lookup(driver, name, CallKind.STREAM)
    with exits_contained():
        async with method.function(driver) as stream:
            await context.send_initial_metadata(())
            await _splice_with_client(frames, stream, frames.acknowledge_eof if acknowledge else None)


async def _serve_resource_stream(
    context: grpc.aio.ServicerContext, frames: FrameStream, driver: Driver, content_encoding: str | None
) -> None:
    handle, stream = create_client_resource(driver, content_encoding)
    # Every encoding a request may name is supported; "no encoding" travels as "" (as in 0.9.0).
    accepted = content_encoding or ""
    try:
        await context.send_initial_metadata(
            ((RESOURCE_METADATA_KEY, json.dumps(handle.to_dict())), (ACCEPT_ENCODING_METADATA_KEY, accepted))
        )
        async with stream:
            await _splice_with_client(frames, stream)
    finally:
        driver.resources.pop(handle.uuid, None)


def _decode_arguments(request: Any) -> tuple[bool, list[Any], dict[str, Any]]:
    """(typed, args, kwargs) of a DriverCallRequest or StreamingDriverCallRequest."""
    if request.HasField("typed_args"):
        typed_args = request.typed_args
        return (
            True,
            [decode_typed(value) for value in typed_args.args],
            {keyword.name: decode_typed(keyword.value) for keyword in typed_args.kwargs},
        )
    return False, [decode_json(value) for value in request.args], {}


def _encode_result(message: Any, value: Any, typed: bool, method: str) -> None:
    try:
        fill_typed(message, value) if typed else fill_json(message, value)
    except (TypeError, ValueError) as error:
        raise StatusError(
            grpc.StatusCode.UNKNOWN, f"{method}() returned a value that cannot be sent: {error}"
        ) from None


def _encode_item(item: Any, *, typed: bool, method: str) -> Any:
    """One streamed item: a TypedValue to batch, or a whole JSON response for older clients."""
    if typed:
        message = values_pb2.TypedValue()
        _encode_result(message, item, True, method)
        return message
    response = jumpstarter_pb2.StreamingDriverCallResponse()
    _encode_result(response.result, item, False, method)
    _check_legacy_size(response, method)
    return response


def _check_legacy_size(response: Any, method: str) -> None:
    """Refuse a result a JSON-only client (such as jumpstarter 0.9.0) could not receive."""
    size = response.ByteSize()
    if size > LEGACY_MAX_MESSAGE_BYTES:
        raise StatusError(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"{method}() returned {size / 2**20:.1f} MiB, over the 4 MiB this client accepts in one message; "
            "return bulk data through a resource or a byte stream",
        )


async def _write_typed_batch(context: grpc.aio.ServicerContext, items: list[Any]) -> None:
    """Send items in as few responses as the message size allows."""
    response = jumpstarter_pb2.StreamingDriverCallResponse()
    size = 0
    for item in items:
        item_size = item.ByteSize()
        if size and size + item_size > _BATCH_BYTES:
            await context.write(response)
            response = jumpstarter_pb2.StreamingDriverCallResponse()
            size = 0
        response.typed_results.append(item)
        size += item_size
    if response.typed_results:
        await context.write(response)


async def _splice_with_client(
    frames: FrameStream, stream: Any, after_client_eof: Callable[[], Awaitable[None]] | None = None
) -> None:
    """Copy between the client's frames and a driver-side stream until both directions end."""
    try:
        await splice(frames, _DriverSide(stream), after_client_eof)
    except BaseExceptionGroup as group:
        # A client that went away is an ordinary end; report anything else, such as a
        # driver's stream that broke (the client must not take a cut-off stream for a whole one).
        rest = group.split((anyio.BrokenResourceError, anyio.ClosedResourceError))[1]
        if rest is not None:
            raise rest.exceptions[0] from None


class DriverStreamBroken(ConnectionError):
    """The driver's side of a stream failed (a target that reset the connection, say)."""


class _DriverSide:
    """A driver's stream whose failures are told apart from the client's leaving."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def receive(self) -> Any:
        with _driver_failures():
            return await self._stream.receive()

    async def send(self, item: Any) -> None:
        with _driver_failures():
            await self._stream.send(item)

    async def send_eof(self) -> None:
        with _driver_failures():
            await self._stream.send_eof()


@contextmanager
def _driver_failures() -> Iterator[None]:
    try:
        yield
    except (anyio.BrokenResourceError, anyio.ClosedResourceError) as error:
        cause = error.__cause__ or error.__context__
        reason = str(error) or (str(cause) if cause else "") or type(error).__name__
        raise DriverStreamBroken(f"the driver's stream broke: {reason}") from error


async def _abort(context: grpc.aio.ServicerContext, driver: Driver | None, method: str, error: Exception) -> NoReturn:
    code = status_code_for(error)
    if not isinstance(error, StatusError):
        context.set_trailing_metadata(((ERROR_CLASS_METADATA_KEY, type(error).__name__),))
        if code in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL) or len(str(error)) > MAX_DETAILS_CHARACTERS:
            where = f"{type(driver).__name__}.{method}()" if driver is not None else method
            logger.warning("%s raised %s: %s", where, type(error).__name__, error, exc_info=error)
    await context.abort(code, status_details_for(error))
    raise AssertionError("unreachable")


@contextmanager
def private_socket_path() -> Iterator[str]:
    """A socket path in a new directory that only this user can enter, removed afterwards."""
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    directory = tempfile.mkdtemp(
        prefix="jumpstarter-", dir=runtime_dir if runtime_dir and os.path.isdir(runtime_dir) else None
    )
    try:
        yield os.path.join(directory, "session.sock")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
