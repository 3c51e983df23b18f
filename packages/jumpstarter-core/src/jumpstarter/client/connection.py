"""`Connection`: the calls of a client to one exporter session.

Every `DriverClient` of a tree shares one Connection. It holds two gRPC channels to the
session: a blocking one, used directly by the calling thread for `call` and
`streamingcall` (the fastest path from synchronous code: no hop through the event loop),
and an asyncio one, used by the async twins, byte streams, resources and logs on the
connection's event loop: its async side.

A connection made on an event loop (`connect_async`, `serve`...) has its async side on that
loop from the start. One made from blocking code (`connect`) starts it on first need, on an
event loop in a thread of its own: a short-lived client that only calls (`j power on`)
starts neither the thread nor the loop.

How calls and their values travel, and how failures come back, is `jumpstarter.common.wire`:
typed values when the exporter advertises them, JSON values otherwise. Large bytes values
travel beside a call, over streams of their own, when the exporter takes them
(`jumpstarter.client._bulk`).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
import weakref
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, ExitStack, asynccontextmanager, suppress
from typing import TYPE_CHECKING, Any, cast

import grpc
from google.protobuf import empty_pb2

from jumpstarter.client._stubs import EXPORTER_SERVICE, ROUTER_SERVICE, stub
from jumpstarter.client.text import printable
from jumpstarter.common.allocator import tune_allocator
from jumpstarter.common.calls import cancellable
from jumpstarter.common.exceptions import (
    DriverConnectionError,
    DriverError,
    DriverInvalidArgument,
    ExporterConnectionLost,
)
from jumpstarter.common.protocol import (
    CLIENT_RELAY_LOGGER_PREFIX,
    ERROR_CLASS_METADATA_KEY,
    LOG_BARRIER_FIELD,
    LOG_BARRIER_METADATA_KEY,
    LOG_CONSUMER_METADATA_KEY,
)
from jumpstarter.common.wire import (
    BulkValues,
    bulk_references,
    bulk_values_supported,
    decode_items,
    decode_result,
    encode_call,
    error_from_status,
    typed_values_supported,
)
from jumpstarter.v1 import common_pb2, jumpstarter_pb2

# Streams, resources and logs import their machinery (anyio among it) where used: a
# short-lived client that only calls (`j power on`) starts without it.
if TYPE_CHECKING:
    import anyio
    from anyio.from_thread import BlockingPortal

    from jumpstarter.client.endpoint import ExporterEndpoint
    from jumpstarter.client.progress import Progress
    from jumpstarter.streams.frames import FrameStream

logger = logging.getLogger(__name__)

# How long closing a byte stream waits, at most, for a driver that does not take what was sent
# (like a socket's linger time): a driver that reads gets everything well before.
STREAM_LINGER_SECONDS = 5.0

# How long a resource download from an original 0.9.0 exporter may stall before the client
# stops waiting for its end (such exporters do not end resources their driver never opened).
LEGACY_RESOURCE_IDLE_SECONDS = 2.0

_LOG_SOURCES = {
    common_pb2.LOG_SOURCE_DRIVER: "driver",
    common_pb2.LOG_SOURCE_BEFORE_LEASE_HOOK: "before_lease_hook",
    common_pb2.LOG_SOURCE_AFTER_LEASE_HOOK: "after_lease_hook",
    common_pb2.LOG_SOURCE_SYSTEM: "system",
}


class _AsyncSide:
    """The event loop a connection's async API runs on (made on it), and the asyncio channel made there."""

    __slots__ = ("channel", "loop", "portal", "router", "stub", "thread")

    def __init__(self, portal: BlockingPortal, channel: grpc.aio.Channel) -> None:
        self.portal = portal
        self.channel = channel
        self.loop = asyncio.get_running_loop()
        self.thread = threading.get_ident()
        self.stub = stub(channel, EXPORTER_SERVICE)
        self.router = stub(channel, ROUTER_SERVICE)


class Connection:
    """One client connection to an exporter session.

    Made on an event loop, it takes that loop's `portal` and an asyncio `channel` made there;
    made from blocking code (neither given), it starts its own loop when first needed, and
    `close()` stops it.
    """

    def __init__(
        self,
        *,
        endpoint: ExporterEndpoint,
        sync_channel: grpc.Channel,
        report: jumpstarter_pb2.GetReportResponse,
        answer_timeout: float,
        portal: BlockingPortal | None = None,
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.address = endpoint.address
        self.answer_timeout = answer_timeout
        """How long opening a byte stream or the log stream may take."""
        self.sync_channel = sync_channel
        self.report = report
        self.typed = typed_values_supported(report.capabilities)
        self.bulk = self.typed and bulk_values_supported(report.capabilities)
        if (portal is None) != (channel is None):
            raise ValueError("give both the portal of the running event loop and a channel made on it, or neither")
        self._async = _AsyncSide(portal, channel) if portal is not None and channel is not None else None
        self._starting = threading.Lock()
        self._own_loop = ExitStack()  # the event loop started for a connection made from blocking code
        self._closed = False
        self._sync_stub = stub(sync_channel, EXPORTER_SERVICE)
        # Resources opened but not yet passed to a call (by uuid): leaving a resource block
        # waits for the driver's last bytes only if some call received the handle.
        self._unused_resources: set[str] = set()
        # Streaming calls in progress, cancelled when the connection closes.
        self._active_calls: weakref.WeakSet[Any] = weakref.WeakSet()

    # -- the async side --------------------------------------------------------------

    @property
    def portal(self) -> BlockingPortal:
        """The portal of the event loop of the async side (started now if it was not)."""
        return self._async_side().portal

    @property
    def channel(self) -> grpc.aio.Channel:
        """The asyncio channel of the async side (started now if it was not)."""
        return self._async_side().channel

    def _async_side(self) -> _AsyncSide:
        side = self._async
        if side is not None:
            return side
        with self._starting:  # one thread starts it; the others wait for it
            if self._async is None:
                if self._closed:
                    raise RuntimeError("the client's connection is closed")
                from jumpstarter.common.loops import blocking_loop

                portal = self._own_loop.enter_context(blocking_loop())
                self._async = portal.call(self._open_async_side, portal)
            return self._async

    async def _open_async_side(self, portal: BlockingPortal) -> _AsyncSide:
        return _AsyncSide(portal, self.endpoint.aio_channel())

    # -- encoding ----------------------------------------------------------------------

    def _request(
        self,
        message_type: Any,
        uuid: str,
        method: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        bulk: BulkValues | None = None,
    ) -> Any:
        if self._unused_resources:
            self._mark_used_resources(args, kwargs)
        request = encode_call(message_type, uuid, method, args, kwargs, typed=self.typed, bulk=bulk)
        if bulk:
            tune_allocator()  # before the buffers of the large values are allocated
        return request

    def _bulk_values(self) -> BulkValues | None:
        """Where a call's large bytes arguments go, if the exporter takes them beside the call."""
        return BulkValues() if self.bulk else None

    def _uploaded(self, bulk: BulkValues) -> AbstractAsyncContextManager[None]:
        """Uploads the large arguments of a call; the exporter holds them while the block runs."""
        from jumpstarter.client._bulk import uploaded

        return uploaded(self._open_router_stream, bulk)

    async def _bulk_result(self, response: jumpstarter_pb2.DriverCallResponse) -> Any:
        """The result of a response whose large bytes are downloaded beside it."""
        from jumpstarter.client._bulk import downloaded

        tune_allocator()
        return decode_result(response, await downloaded(self._open_router_stream, bulk_references(response)))

    def _mark_used_resources(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        from jumpstarter.common.handles import is_client_stream_handle

        for value in (*args, *kwargs.values()):
            if is_client_stream_handle(value):
                self._unused_resources.discard(value.get("uuid"))

    def _check_blocking_allowed(self, what: str) -> None:
        side = self._async
        if side is not None and threading.get_ident() == side.thread:
            raise RuntimeError(
                f"{what} blocks, and this thread runs the client's event loop: "
                "in async code use the *_async twin (await client.call_async(...))"
            )

    def _check_loop(self, what: str) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        side = self._async
        if side is None or running is not side.loop:
            raise RuntimeError(
                f"{what} must run on the event loop the client was connected on; "
                "from other threads use the blocking API or client.portal.call()"
            )

    # -- driver calls ----------------------------------------------------------------

    def call(self, uuid: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        self._check_blocking_allowed("call()")
        bulk = self._bulk_values()
        request = self._request(jumpstarter_pb2.DriverCallRequest, uuid, method, args, kwargs, bulk)
        try:
            if bulk:
                with self.portal.wrap_async_context_manager(self._uploaded(bulk)):
                    response = self._sync_stub.DriverCall(request)
            else:
                response = self._sync_stub.DriverCall(request)
        except grpc.RpcError as error:
            raise _failed(error, method) from None
        if response.bulk_values:
            return self.portal.call(self._bulk_result, response)
        return decode_result(response)

    async def call_async(self, uuid: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        self._check_loop("call_async()")
        bulk = self._bulk_values()
        request = self._request(jumpstarter_pb2.DriverCallRequest, uuid, method, args, kwargs, bulk)
        try:
            if bulk:
                async with self._uploaded(bulk):
                    response = await cancellable(self._async_side().stub.DriverCall(request))
            else:
                response = await cancellable(self._async_side().stub.DriverCall(request))
        except grpc.RpcError as error:
            raise _failed(error, method) from None
        if response.bulk_values:
            return await self._bulk_result(response)
        return decode_result(response)

    def streamingcall(self, uuid: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Iterator[Any]:
        """The items of a streaming call; leaving the loop early cancels the driver's generator."""
        self._check_blocking_allowed("streamingcall()")
        request = self._request(jumpstarter_pb2.StreamingDriverCallRequest, uuid, method, args, kwargs)
        call = self._sync_stub.StreamingDriverCall(request)
        self._active_calls.add(call)
        try:
            for response in call:
                yield from decode_items(response)
        except grpc.RpcError as error:
            raise _failed(error, method) from None
        finally:
            call.cancel()

    async def streamingcall_async(
        self, uuid: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> AsyncIterator[Any]:
        self._check_loop("streamingcall_async()")
        request = self._request(jumpstarter_pb2.StreamingDriverCallRequest, uuid, method, args, kwargs)
        call = self._async_side().stub.StreamingDriverCall(request)
        self._active_calls.add(call)
        try:
            async for response in call:
                for item in decode_items(response):
                    yield item
        except grpc.RpcError as error:
            raise _failed(error, method) from None
        finally:
            call.cancel()

    # -- byte streams and resources --------------------------------------------------

    async def _open_router_stream(
        self, request_json: str, what: str, *extra_metadata: tuple[str, str]
    ) -> tuple[Any, dict[str, str]]:
        """Start a RouterService.Stream call; return it with the session's initial metadata."""
        from jumpstarter.common.handles import REQUEST_METADATA_KEY

        self._check_loop(what)
        call = self._async_side().router.Stream(metadata=((REQUEST_METADATA_KEY, request_json), *extra_metadata))
        try:
            metadata = dict(await self._initial_metadata(call, f"open {what}") or ())
        except grpc.RpcError as error:
            raise _failed(error, what) from None
        if call.done():
            code = await call.code()
            if code != grpc.StatusCode.OK:
                details = await call.details()
                raise error_from_status(code, details and printable(details), await call.trailing_metadata(), what)
        return call, metadata

    async def _initial_metadata(self, call: Any, what: str) -> Any:
        """The call's initial metadata; ExporterConnectionLost if it takes over `answer_timeout` (the call ends)."""
        try:
            return await asyncio.wait_for(call.initial_metadata(), self.answer_timeout)
        except TimeoutError:
            call.cancel()
            raise ExporterConnectionLost(
                f"the exporter at {self.address} did not {what} within {self.answer_timeout:g} s (its log may say why)"
            ) from None

    @asynccontextmanager
    async def stream_async(self, uuid: str, method: str) -> AsyncIterator[FrameStream]:
        """Open a driver byte stream. Leaving normally delivers what was sent before closing."""
        import anyio

        from jumpstarter.common.handles import EOF_ACK_METADATA_KEY, DriverStreamRequest
        from jumpstarter.streams.frames import FrameStream

        request = DriverStreamRequest(uuid=uuid, method=method).to_json()
        # Our exporters (those with typed values) acknowledge the end of stream, see FrameStream.
        acknowledged = self.typed
        ack_request = ((EOF_ACK_METADATA_KEY, "1"),) if acknowledged else ()
        call, _ = await self._open_router_stream(request, method, *ack_request)
        stream = FrameStream(call, client_side=True)
        try:
            yield stream
            if acknowledged:
                # Everything sent is on its way; wait (a little, if the driver is stuck) until it arrived.
                with anyio.move_on_after(STREAM_LINGER_SECONDS):
                    await stream.send_eof()
                    await stream.drain_until_acknowledged()
        finally:
            await stream.aclose()

    @asynccontextmanager
    async def resource_async(
        self, uuid: str, source: Any, content_encoding: str | None
    ) -> AsyncIterator[dict[str, Any]]:
        import json

        from jumpstarter.client.progress import Progress
        from jumpstarter.client.resources import local_endpoint
        from jumpstarter.common.handles import RESOURCE_METADATA_KEY, ResourceStreamRequest
        from jumpstarter.common.tasks import background_tasks
        from jumpstarter.streams.frames import FrameStream

        async with local_endpoint(source) as local:
            request = ResourceStreamRequest(uuid=uuid, content_encoding=content_encoding)
            call, metadata = await self._open_router_stream(request.to_json(), "resource")
            async with FrameStream(call, client_side=True) as remote:
                try:
                    handle = json.loads(metadata[RESOURCE_METADATA_KEY])
                    resource_uuid = handle["uuid"]
                except (KeyError, TypeError, ValueError):
                    raise DriverConnectionError("the exporter opened a resource without a valid handle") from None
                self._unused_resources.add(resource_uuid)
                try:
                    async with background_tasks() as tasks:
                        tasks.start_soon(_upload, local, remote)
                        download = Progress()
                        tasks.start_soon(_download, remote, local, download)
                        yield handle
                        if resource_uuid not in self._unused_resources:
                            # The driver is done with the resource once the call that used it
                            # returned, but its last bytes may still be on the way.
                            if self.typed:
                                await download.finished.wait()
                            elif local.writable:
                                # Exporters of the original never end a resource their driver did not
                                # open: wait while bytes keep coming.
                                await download.wait(LEGACY_RESOURCE_IDLE_SECONDS)
                finally:
                    self._unused_resources.discard(resource_uuid)

    # -- logs ------------------------------------------------------------------------

    @asynccontextmanager
    async def log_stream_async(self) -> AsyncIterator[None]:
        """Re-log the exporter's records locally (loggers ``jumpstarter.remote.<source>``) while open.

        With our exporters, leaving waits until every record emitted before has arrived
        (a log barrier, see `jumpstarter.common.protocol`).
        """
        import anyio

        from jumpstarter.common.tasks import background_tasks

        self._check_loop("log_stream_async()")
        name = uuid.uuid4().hex
        call = self._async_side().stub.LogStream(empty_pb2.Empty(), metadata=((LOG_CONSUMER_METADATA_KEY, name),))
        if self.typed:
            try:
                # Our exporters send initial metadata once this stream receives every record
                # (the original sends it with the first record: it cannot be waited for).
                await self._initial_metadata(call, "open its log stream")
            except grpc.RpcError as error:
                raise _failed(error, "LogStream") from None
        relayed_all = anyio.Event()
        try:
            async with background_tasks() as tasks:
                tasks.start_soon(_relay_logs, call, name, relayed_all)
                yield
                if self.typed:
                    with anyio.move_on_after(STREAM_LINGER_SECONDS), suppress(grpc.RpcError):
                        # An exporter that is gone has no more records to send.
                        await self._async_side().stub.GetStatus(
                            jumpstarter_pb2.GetStatusRequest(), metadata=((LOG_BARRIER_METADATA_KEY, name),)
                        )
                        await relayed_all.wait()
        finally:
            call.cancel()

    # -- closing ---------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close a connection made on an event loop, on that loop."""
        self._cancel_calls()
        self.sync_channel.close()
        await self.channel.close()

    def close(self) -> None:
        """Close a connection made from blocking code; stop its event loop if it started one."""
        with self._starting:
            self._closed = True  # no loop may start after this
            side = self._async
        if side is None:
            self._cancel_calls()
            self.sync_channel.close()
        else:
            side.portal.call(self.aclose)
        self._own_loop.close()

    def _cancel_calls(self) -> None:
        for call in list(self._active_calls):
            call.cancel()


def _failed(error: grpc.RpcError, what: str) -> DriverError:
    """The exception of a failed call of `what`, with the exporter's words made printable."""
    # The gRPC error is the new exception's context: without its traceback, it holds no frame,
    # and so no cycle through the frame that holds the call (a streaming call is its own error).
    error.__traceback__ = None
    details = error.details()
    # gRPC's metadata items are (key, value) named tuples; its type stubs declare a plain class.
    trailing = cast("tuple[tuple[str, str | bytes], ...]", error.trailing_metadata() or ())
    metadata = [
        (key, printable(value) if key == ERROR_CLASS_METADATA_KEY and isinstance(value, str) else value)
        for key, value in trailing
    ]
    return error_from_status(error.code(), details and printable(details), metadata, what)


async def _upload(local: Any, remote: FrameStream) -> None:
    import anyio

    try:
        if local.readable:
            while True:
                try:
                    chunk = await local.receive()
                except anyio.EndOfStream:
                    break
                await remote.send(chunk)
        await remote.send_eof()
    except anyio.BrokenResourceError:
        pass  # the driver stopped reading: it has what it wanted


async def _download(remote: FrameStream, local: Any, progress: Progress) -> None:
    """Copy what the driver sends over a resource into the local end."""
    import anyio

    try:
        while True:
            try:
                chunk = await remote.receive()
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                break
            progress.advanced()
            if not local.writable:
                raise DriverInvalidArgument("the driver sent data back, but the resource given to it is read-only")
            await local.send(chunk)
    finally:
        progress.finish()


def _relay(record: jumpstarter_pb2.LogStreamResponse) -> None:
    """Log an exporter's record here, as ``jumpstarter.remote.<source>`` (``...driver.<class>``
    when the exporter names the driver's class), its text made printable."""
    source = _LOG_SOURCES.get(record.source, "system") if record.HasField("source") else "system"
    relay = logging.getLogger(f"{CLIENT_RELAY_LOGGER_PREFIX}.{source}")
    name = relay.name
    if record.HasField("driver_type") and record.driver_type:
        # The record is named after the driver's class, but no logger is made for each name an
        # exporter sends (loggers live for ever): only one configured here receives it as its own.
        name = f"{name}.{printable(record.driver_type)}"
        configured = logging.Logger.manager.loggerDict.get(name)
        if isinstance(configured, logging.Logger):
            relay = configured
    level = logging.getLevelName(record.severity or "INFO")
    level = level if isinstance(level, int) else logging.INFO
    if relay.isEnabledFor(level):
        relay.handle(relay.makeRecord(name, level, "(exporter)", 0, printable(record.message), (), None))


async def _relay_logs(call: Any, name: str, barrier_passed: anyio.Event) -> None:
    try:
        async for record in call:
            if record.structured_fields.get(LOG_BARRIER_FIELD) == name:
                barrier_passed.set()
                continue
            _relay(record)
    except grpc.RpcError as error:
        code = error.code()
        if code == grpc.StatusCode.UNAVAILABLE:
            logger.warning("lost the exporter (it stopped, or the connection broke): no more log records from it")
        elif code not in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNIMPLEMENTED):
            logger.warning("the exporter's log stream ended: %s", error.details())
