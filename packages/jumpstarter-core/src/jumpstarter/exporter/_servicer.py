"""`ExporterServicer`: the jumpstarter.v1 ExporterService and RouterService over a `SessionProvider`.

The one place where gRPC meets the sessions: each RPC takes its session from the provider,
turns the request into a session call with `jumpstarter.common.wire`, and turns the
outcome back into responses, or into a status when it fails (`_fail`).

Driver calls arrive as bytes, and their responses leave as bytes (`jumpstarter.common.wire`
encodes and parses them): a request that may take long to parse (a large one of many
values) is counted and parsed in a thread, never on the event loop that serves every
client. Each connection is a caller of its own for the session's worker threads
(`context.peer()` tells connections apart, on TCP behind
`jumpstarter.exporter.gate.ConnectionGate` too), and may hold a bounded number of log
streams (each record is written to every stream).

Large bytes arguments and results travel beside their calls, over streams of their own
(`jumpstarter.exporter._bulk`): the servicer owns the values between stream and call.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias, cast

import anyio
import grpc
from anyio.abc import AnyByteStream
from google.protobuf import empty_pb2

from jumpstarter.common.handles import (
    ACCEPT_ENCODING_METADATA_KEY,
    EOF_ACK_METADATA_KEY,
    REQUEST_METADATA_KEY,
    RESOURCE_METADATA_KEY,
    BulkDownloadRequest,
    BulkUploadRequest,
    DriverStreamRequest,
    ResourceStreamRequest,
    parse_stream_request,
)
from jumpstarter.common.protocol import (
    BULK_FRAME_BYTES,
    BULK_MIN_BYTES,
    CLIENT_LABEL,
    LOG_BARRIER_METADATA_KEY,
    LOG_CONSUMER_METADATA_KEY,
    NAME_LABEL,
    SERVER_OPTIONS,
    STATUS_AFTER_METADATA_KEY,
    STATUS_WAIT_SECONDS,
)
from jumpstarter.common.wire import (
    BATCH_ITEMS,
    EXPORTER_CAPABILITIES,
    BulkValues,
    CallRefused,
    DecodedCall,
    decode_call,
    encode_result,
    end_call,
    holds_few_fields,
    item_encoder,
    parse_request,
    status_for,
    streaming_responses,
)
from jumpstarter.driver.base import Driver
from jumpstarter.driver.tree import Place, walk_tree
from jumpstarter.exporter._bulk import BulkStore
from jumpstarter.exporter._provider import SessionProvider
from jumpstarter.exporter.session import Session
from jumpstarter.streams.copy import splice
from jumpstarter.streams.frames import FrameStream
from jumpstarter.v1 import jumpstarter_pb2, jumpstarter_pb2_grpc, router_pb2_grpc

__all__ = ["MAX_LOG_STREAMS_PER_CONNECTION", "ExporterServicer", "driver_reports", "grpc_server"]

_Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"

# Log streams one connection may hold open: every record is written to each of them.
MAX_LOG_STREAMS_PER_CONNECTION = 16
# Requests are parsed on the event loop when that takes a millisecond or so: up to this size, or
# up to BULK_MIN_BYTES when they hold few fields (parsing a large bytes or text value is a copy;
# many small values take long, up to thirty times their bytes). Others are parsed in a thread.
_PARSE_ON_LOOP_BYTES = 32 * 1024
_PARSE_ON_LOOP_FIELDS = 256
# gRPC's name of every peer of a Unix socket: its clients are the exporter's own user, not told apart.
_UNIX_PEER = "unix:"


class ExporterServicer(jumpstarter_pb2_grpc.ExporterServiceServicer, router_pb2_grpc.RouterServiceServicer):
    """Both services of an exporter, for the sessions of `provider`."""

    def __init__(self, provider: SessionProvider) -> None:
        self.provider = provider
        self._log_streams: Counter[str] = Counter()
        self._parsing = anyio.CapacityLimiter(2)  # large requests parsed at once (each may take 100s of MB)
        self.bulk = BulkStore()

    def add_to(self, server: grpc.aio.Server) -> None:
        # As the generated add_ExporterServiceServicer_to_server, except that driver calls
        # arrive as bytes (no deserializer), to be parsed by `_call_request`.
        handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
            "GetReport": grpc.unary_unary_rpc_method_handler(
                self.GetReport,
                request_deserializer=empty_pb2.Empty.FromString,
                response_serializer=jumpstarter_pb2.GetReportResponse.SerializeToString,
            ),
            # DriverCall's responses leave as bytes too, encoded by `encode_result`.
            "DriverCall": grpc.unary_unary_rpc_method_handler(self.DriverCall),
            "StreamingDriverCall": grpc.unary_stream_rpc_method_handler(
                self.StreamingDriverCall,
                response_serializer=jumpstarter_pb2.StreamingDriverCallResponse.SerializeToString,
            ),
            "LogStream": grpc.unary_stream_rpc_method_handler(
                self.LogStream,
                request_deserializer=empty_pb2.Empty.FromString,
                response_serializer=jumpstarter_pb2.LogStreamResponse.SerializeToString,
            ),
            "Reset": grpc.unary_unary_rpc_method_handler(
                self.Reset,
                request_deserializer=jumpstarter_pb2.ResetRequest.FromString,
                response_serializer=jumpstarter_pb2.ResetResponse.SerializeToString,
            ),
            "GetStatus": grpc.unary_unary_rpc_method_handler(
                self.GetStatus,
                request_deserializer=jumpstarter_pb2.GetStatusRequest.FromString,
                response_serializer=jumpstarter_pb2.GetStatusResponse.SerializeToString,
            ),
            "EndSession": grpc.unary_unary_rpc_method_handler(
                self.EndSession,
                request_deserializer=jumpstarter_pb2.EndSessionRequest.FromString,
                response_serializer=jumpstarter_pb2.EndSessionResponse.SerializeToString,
            ),
        }
        service = "jumpstarter.v1.ExporterService"
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, handlers),))
        server.add_registered_method_handlers(service, handlers)
        router_pb2_grpc.add_RouterServiceServicer_to_server(self, server)

    async def _call_request(self, data: bytes, message_type: Any) -> tuple[str, str, DecodedCall]:
        """The driver, method and arguments of a call's request (parsed in a thread when that may take long)."""
        size = len(data)
        if size <= _PARSE_ON_LOOP_BYTES or (
            size <= BULK_MIN_BYTES and holds_few_fields(message_type, data, _PARSE_ON_LOOP_FIELDS)
        ):
            return _parse_call(message_type, data, self.bulk.take)
        return await anyio.to_thread.run_sync(_parse_call, message_type, data, self.bulk.take, limiter=self._parsing)

    def _encode_bulk_result(self, result: Any, method: str) -> bytes:
        """The response for a client that downloads large bytes beside it; those wait in `bulk`."""
        bulk = BulkValues()
        response = encode_result(result, typed=True, method=method, bulk=bulk)
        if bulk:
            self.bulk.hold(bulk)
        return response

    # -- ExporterService -------------------------------------------------------------

    async def GetReport(self, request: empty_pb2.Empty, context: _Context) -> Any:
        try:
            async with self.provider.session() as session:
                return _report(session, self.provider.labels)
        except Exception as error:
            _fail(context, error)

    async def DriverCall(self, data: bytes, context: _Context) -> Any:
        try:
            uuid, method, call = await self._call_request(data, jumpstarter_pb2.DriverCallRequest)
            async with self.provider.session() as session:
                result = await session.call(uuid, method, call.args, call.kwargs, caller=context.peer())
                if call.bulk_results:
                    return self._encode_bulk_result(result, method)
                return encode_result(result, typed=call.typed, method=method)
        except Exception as error:
            _fail(context, error)

    async def StreamingDriverCall(self, data: bytes, context: _Context) -> None:
        try:
            uuid, method, call = await self._call_request(data, jumpstarter_pb2.StreamingDriverCallRequest)
            async with self.provider.session() as session:
                encode = item_encoder(typed=call.typed, method=method)
                iterate = session.iterate(uuid, method, call.args, call.kwargs, encode, caller=context.peer())
                async with iterate as items:
                    while True:
                        try:
                            batch = await items.aget_batch(BATCH_ITEMS)
                        except anyio.EndOfStream:
                            break
                        for response in streaming_responses(batch, typed=call.typed):
                            await context.write(response)
        except Exception as error:
            _fail(context, error)

    async def LogStream(self, request: empty_pb2.Empty, context: _Context) -> None:
        name = _text(dict(context.invocation_metadata() or ()).get(LOG_CONSUMER_METADATA_KEY))
        peer = context.peer()
        counted = peer != _UNIX_PEER
        try:
            if counted and self._log_streams[peer] >= MAX_LOG_STREAMS_PER_CONNECTION:
                raise CallRefused(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"this connection holds {MAX_LOG_STREAMS_PER_CONNECTION} log streams already, the most it may: "
                    "close one first (a client needs one at most)",
                )
            if counted:
                self._log_streams[peer] += 1
            try:
                # An open log stream holds its session: with `Exporter`, it keeps a client attached.
                async with self.provider.session() as session:
                    with session.logs(name) as records:
                        # Initial metadata tells the client that it receives every record from now on.
                        await context.send_initial_metadata(())
                        while True:
                            for record in await records.aget_batch():
                                await context.write(record)
            finally:
                if counted:
                    self._log_streams[peer] -= 1
                    if not self._log_streams[peer]:
                        del self._log_streams[peer]
        except Exception as error:
            _fail(context, error)

    async def Reset(self, request: Any, context: _Context) -> None:
        _fail(context, CallRefused(grpc.StatusCode.UNIMPLEMENTED, "Reset is not implemented by this exporter"))

    async def GetStatus(self, request: Any, context: _Context) -> Any:
        metadata = dict(context.invocation_metadata() or ())
        barrier = _text(metadata.get(LOG_BARRIER_METADATA_KEY))
        if barrier:
            session = self.provider.current_session()
            if session is not None:
                session.log_barrier(barrier)
        seen = _text(metadata.get(STATUS_AFTER_METADATA_KEY)) or ""
        if seen.isdecimal():
            # The client waits for the next status (see jumpstarter.common.protocol): tell it so.
            await context.send_initial_metadata(((STATUS_AFTER_METADATA_KEY, "1"),))
            status = await self.provider.status.after(int(seen), STATUS_WAIT_SECONDS)
        else:
            status = self.provider.status.current()
        response = jumpstarter_pb2.GetStatusResponse(
            status=status.status, message=status.message, status_version=status.version
        )
        if status.previous is not None:
            response.previous_status = status.previous
        return response

    async def EndSession(self, request: Any, context: _Context) -> Any:
        success, message = await self.provider.end_session()
        return jumpstarter_pb2.EndSessionResponse(success=success, message=message)

    # -- RouterService ---------------------------------------------------------------

    async def Stream(self, request_iterator: Any, context: _Context) -> None:
        metadata = {key: value for key, value in context.invocation_metadata() or ()}
        try:
            async with self.provider.session() as session:
                try:
                    request = parse_stream_request(_text(metadata.get(REQUEST_METADATA_KEY)))
                except ValueError as error:
                    raise CallRefused(grpc.StatusCode.INVALID_ARGUMENT, str(error)) from None
                if isinstance(request, (BulkUploadRequest, BulkDownloadRequest)):
                    async with FrameStream(context, client_side=False, frame_bytes=BULK_FRAME_BYTES) as frames:
                        await context.send_initial_metadata(())
                        if isinstance(request, BulkUploadRequest):
                            await self.bulk.receive(frames, request)
                        else:
                            await self.bulk.send(frames, request)
                    return
                await self._open_stream(session, request, metadata, context)
        except Exception as error:
            _fail(context, error)

    async def _open_stream(
        self,
        session: Session,
        request: DriverStreamRequest | ResourceStreamRequest,
        metadata: dict[str, Any],
        context: _Context,
    ) -> None:
        """Splice a driver's byte stream, or a client resource, with the client's frames."""
        async with FrameStream(context, client_side=False) as frames:
            if isinstance(request, DriverStreamRequest):
                acknowledge = metadata.get(EOF_ACK_METADATA_KEY) == "1"
                async with session.open_stream(str(request.uuid), request.method) as stream:
                    await context.send_initial_metadata(())
                    await _splice_with_client(frames, stream, frames.acknowledge_eof if acknowledge else None)
            else:
                encoding = request.content_encoding
                async with session.open_resource(str(request.uuid), encoding) as (handle, stream):
                    # Every encoding a request may name is supported; "none" travels as "" (as in 0.9.0).
                    await context.send_initial_metadata(
                        (
                            (RESOURCE_METADATA_KEY, json.dumps(handle.to_dict())),
                            (ACCEPT_ENCODING_METADATA_KEY, encoding or ""),
                        )
                    )
                    await _splice_with_client(frames, stream)


def _parse_call(message_type: Any, data: bytes, take_bulk: Callable[[str, int], bytes]) -> tuple[str, str, DecodedCall]:
    request = parse_request(message_type, data)
    return request.uuid, request.method, decode_call(request, take_bulk)


def grpc_server(
    provider: SessionProvider,
    interceptors: list[grpc.aio.ServerInterceptor] | None = None,
    options: list[tuple[str, Any]] | None = None,
) -> Any:
    """A gRPC server that serves `provider`, for the caller to add ports to and start."""
    server = grpc.aio.server(options=[*SERVER_OPTIONS, *(options or ())], interceptors=interceptors)
    ExporterServicer(provider).add_to(server)
    return server


def _report(session: Session, labels: Any) -> jumpstarter_pb2.GetReportResponse:
    return jumpstarter_pb2.GetReportResponse(
        uuid=str(session.uuid),
        labels=labels,
        reports=[_driver_report(place) for place in session.places],
        capabilities=EXPORTER_CAPABILITIES,
    )


def driver_reports(root: Driver) -> list[jumpstarter_pb2.DriverInstanceReport]:
    """The reports of a driver tree, as GetReport gives them (Register sends them to a lab controller)."""
    return [_driver_report(place) for place in walk_tree(root)]


def _driver_report(place: Place[Driver]) -> jumpstarter_pb2.DriverInstanceReport:
    driver = place.node
    labels = {**driver.labels, **driver.extra_labels(), CLIENT_LABEL: driver.client()}
    if place.name is not None:
        labels[NAME_LABEL] = place.name
    entry = jumpstarter_pb2.DriverInstanceReport(
        uuid=str(driver.uuid), labels=labels, methods_description=driver.methods_description
    )
    if place.parent is not None:
        entry.parent_uuid = str(place.parent.uuid)
    if driver.description:
        entry.description = driver.description
    return entry


async def _splice_with_client(
    frames: FrameStream, stream: AnyByteStream, after_client_eof: Callable[[], Awaitable[None]] | None = None
) -> None:
    """Copy between the client's frames and a driver-side stream until both directions end."""
    try:
        await splice(frames, stream, after_client_eof)
    except BaseExceptionGroup as group:
        # A client that went away is an ordinary end; report anything else, such as a
        # driver's stream that broke (the client must not take a cut-off stream for a whole one).
        rest = group.split((anyio.BrokenResourceError, anyio.ClosedResourceError))[1]
        if rest is not None:
            raise rest.exceptions[0] from None


def _text(value: str | bytes | None) -> str | None:
    # Metadata keys without the -bin suffix carry text: gRPC hands their values over as str.
    return cast("str | None", value)


def _fail(context: _Context, error: Exception) -> None:
    """End the RPC, once its handler returns, with the status `error` travels as (see
    `jumpstarter.common.wire.status_for`)."""
    status = status_for(error)
    end_call(context, status.code, status.details, status.metadata)
