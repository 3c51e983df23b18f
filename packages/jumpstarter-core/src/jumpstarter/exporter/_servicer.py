"""`ExporterServicer`: the jumpstarter.v1 ExporterService and RouterService over a `SessionProvider`.

The one place where gRPC meets the sessions: each RPC takes its session from the provider,
turns the request into a session call with `jumpstarter.common.wire`, and turns the
outcome back into responses, or into a status when it fails (`_abort`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeAlias, cast

import anyio
import grpc
from anyio.abc import AnyByteStream
from google.protobuf import empty_pb2

from jumpstarter.common.handles import (
    ACCEPT_ENCODING_METADATA_KEY,
    EOF_ACK_METADATA_KEY,
    REQUEST_METADATA_KEY,
    RESOURCE_METADATA_KEY,
    DriverStreamRequest,
    parse_stream_request,
)
from jumpstarter.common.protocol import (
    CLIENT_LABEL,
    LOG_BARRIER_METADATA_KEY,
    LOG_CONSUMER_METADATA_KEY,
    NAME_LABEL,
    SERVER_OPTIONS,
)
from jumpstarter.common.wire import (
    BATCH_ITEMS,
    EXPORTER_CAPABILITIES,
    CallRefused,
    decode_call,
    encode_result,
    item_encoder,
    status_for,
    streaming_responses,
)
from jumpstarter.driver.base import Driver
from jumpstarter.driver.tree import Place
from jumpstarter.exporter._provider import SessionProvider
from jumpstarter.exporter.session import Session
from jumpstarter.streams.copy import splice
from jumpstarter.streams.frames import FrameStream
from jumpstarter.v1 import jumpstarter_pb2, jumpstarter_pb2_grpc, router_pb2_grpc

__all__ = ["ExporterServicer", "grpc_server"]

_Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"


class ExporterServicer(jumpstarter_pb2_grpc.ExporterServiceServicer, router_pb2_grpc.RouterServiceServicer):
    """Both services of an exporter, for the sessions of `provider`."""

    def __init__(self, provider: SessionProvider) -> None:
        self.provider = provider

    def add_to(self, server: grpc.aio.Server) -> None:
        jumpstarter_pb2_grpc.add_ExporterServiceServicer_to_server(self, server)
        router_pb2_grpc.add_RouterServiceServicer_to_server(self, server)

    # -- ExporterService -------------------------------------------------------------

    async def GetReport(self, request: empty_pb2.Empty, context: _Context) -> Any:
        try:
            async with self.provider.session() as session:
                return _report(session, self.provider.labels)
        except Exception as error:
            await _abort(context, error)

    async def DriverCall(self, request: Any, context: _Context) -> Any:
        try:
            async with self.provider.session() as session:
                call = decode_call(request)
                result = await session.call(request.uuid, request.method, call.args, call.kwargs)
                return encode_result(result, typed=call.typed, method=request.method)
        except Exception as error:
            await _abort(context, error)

    async def StreamingDriverCall(self, request: Any, context: _Context) -> None:
        try:
            async with self.provider.session() as session:
                call = decode_call(request)
                encode = item_encoder(typed=call.typed, method=request.method)
                async with session.iterate(request.uuid, request.method, call.args, call.kwargs, encode) as items:
                    while True:
                        try:
                            batch = await items.aget_batch(BATCH_ITEMS)
                        except anyio.EndOfStream:
                            break
                        for response in streaming_responses(batch, typed=call.typed):
                            await context.write(response)
        except Exception as error:
            await _abort(context, error)

    async def LogStream(self, request: empty_pb2.Empty, context: _Context) -> None:
        name = _text(dict(context.invocation_metadata() or ()).get(LOG_CONSUMER_METADATA_KEY))
        try:
            # An open log stream holds its session: with `Exporter`, it keeps a client attached.
            async with self.provider.session() as session:
                with session.logs(name) as records:
                    # Initial metadata tells the client that it receives every record from now on.
                    await context.send_initial_metadata(())
                    while True:
                        for record in await records.aget_batch():
                            await context.write(record)
        except Exception as error:
            await _abort(context, error)

    async def Reset(self, request: Any, context: _Context) -> NoReturn:
        await _abort(context, CallRefused(grpc.StatusCode.UNIMPLEMENTED, "Reset is not implemented by this exporter"))

    async def GetStatus(self, request: Any, context: _Context) -> Any:
        barrier = _text(dict(context.invocation_metadata() or ()).get(LOG_BARRIER_METADATA_KEY))
        if barrier:
            session = self.provider.current_session()
            if session is not None:
                session.log_barrier(barrier)
        status = self.provider.status
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
            async with self.provider.session() as session, FrameStream(context, client_side=False) as frames:
                try:
                    request = parse_stream_request(_text(metadata.get(REQUEST_METADATA_KEY)))
                except ValueError as error:
                    raise CallRefused(grpc.StatusCode.INVALID_ARGUMENT, str(error)) from None
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
        except Exception as error:
            await _abort(context, error)


def grpc_server(provider: SessionProvider, interceptors: list[grpc.aio.ServerInterceptor] | None = None) -> Any:
    """A gRPC server that serves `provider`, for the caller to add ports to and start."""
    server = grpc.aio.server(options=SERVER_OPTIONS, interceptors=interceptors)
    ExporterServicer(provider).add_to(server)
    return server


def _report(session: Session, labels: Any) -> jumpstarter_pb2.GetReportResponse:
    return jumpstarter_pb2.GetReportResponse(
        uuid=str(session.uuid),
        labels=labels,
        reports=[_driver_report(place) for place in session.places],
        capabilities=EXPORTER_CAPABILITIES,
    )


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


async def _abort(context: _Context, error: Exception) -> NoReturn:
    """End the RPC with the status `error` travels as (see `jumpstarter.common.wire.status_for`)."""
    status = status_for(error)
    if status.metadata:
        context.set_trailing_metadata(status.metadata)
    await context.abort(status.code, status.details)
    raise AssertionError("unreachable")
