"""The wire format of a driver call, both ways: the one place that knows it.

A call travels as a `DriverCallRequest` (one result) or a `StreamingDriverCallRequest`
(a generator's items); a failed call travels as a gRPC status. This module turns each of
them into Python values and back, for the client (`jumpstarter.client.connection`) and
for the exporter (`jumpstarter.exporter`):

- **negotiation**: values are typed (`TypedValue`: ints, bytes, keyword arguments...) when
  the exporter advertises the ``typed-values`` capability and the request carries
  ``typed_args``; otherwise JSON values (`google.protobuf.Value`), the only encoding the
  original jumpstarter 0.9.0 speaks. The exporter answers in the encoding of the request.
  See `jumpstarter.common.values` for the encodings of single values.
- **bytes**: unary calls are encoded here to the bytes sent (`encode_call`, `encode_result`),
  and parsed from those received (`parse_request`, `parse_result`): each size is that of the
  bytes, and a large bytes result is encoded with one copy of its value.
- **size checks**: a request must fit the exporter's limit (`MAX_MESSAGE_BYTES`, or 4 MiB
  for JSON-only exporters), and a result sent to a JSON-only client must fit its 4 MiB. An
  exporter refuses a request that holds more than `MAX_CALL_VALUES` values before parsing
  it (`parse_request`): a value may take two bytes on the wire and thirty times more parsed.
- **bulk values**: between peers that advertise ``bulk-values``, a bytes argument or result
  of `BULK_MIN_BYTES` or more travels beside the call rather than in it: the message holds a
  `BulkValue` reference (uuid and size), collected by `BulkValues` while it is encoded, and
  the bytes go over a `RouterService.Stream` of their own (`jumpstarter.common.handles`:
  the client uploads an argument before the call, and downloads a result after it). Neither
  side then holds more than about one copy of the value, and a value may take up to
  `BULK_MAX_BYTES`. Decoding takes the bytes of each reference from a resolver.
- **streamed items**: typed items are batched, several per response, up to
  `BATCH_BYTES`; JSON items travel one per response, as the original expects.
- **errors**: an exception becomes a status code, its message and, when a driver raised
  it, trailing metadata naming its class (`status_for`); the client turns these back into
  the matching `DriverError` subclass (`error_from_status`). Refusals of the exporter
  itself (an unknown method, bad arguments) are `CallRefused` and name no class.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast
from uuid import uuid4

import grpc
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import DecodeError, Message

from jumpstarter.common.allocator import LARGE_MESSAGE_BYTES, tune_allocator
from jumpstarter.common.exceptions import (
    DriverConnectionError,
    DriverError,
    DriverInvalidArgument,
    DriverMethodNotImplemented,
    DriverTimeout,
    ExporterConnectionLost,
    ExporterNotReady,
)
from jumpstarter.common.protocol import (
    BULK_MAX_BYTES,
    CAPABILITY_BULK_VALUES,
    CAPABILITY_KEEPALIVE,
    CAPABILITY_TYPED_VALUES,
    ERROR_CLASS_METADATA_KEY,
    LEGACY_MAX_MESSAGE_BYTES,
    MAX_MESSAGE_BYTES,
)
from jumpstarter.common.values import (
    BulkResolver,
    TypedValue,
    bulk_values_resolved,
    decode_json,
    decode_typed,
    fill_json,
    fill_typed,
)
from jumpstarter.v1 import jumpstarter_pb2, values_pb2

__all__ = [
    "BATCH_BYTES",
    "BATCH_ITEMS",
    "EXPORTER_CAPABILITIES",
    "MAX_CALL_VALUES",
    "MAX_DETAILS_CHARACTERS",
    "BulkValues",
    "CallRefused",
    "DecodedCall",
    "WireStatus",
    "bulk_references",
    "bulk_values_supported",
    "decode_call",
    "decode_items",
    "decode_result",
    "encode_call",
    "encode_result",
    "error_from_status",
    "holds_few_fields",
    "item_encoder",
    "keepalive_supported",
    "parse_request",
    "parse_result",
    "status_for",
    "streaming_responses",
    "typed_values_supported",
]

# The protocol features this project's exporters advertise in GetReportResponse.capabilities.
EXPORTER_CAPABILITIES = (CAPABILITY_TYPED_VALUES, CAPABILITY_KEEPALIVE, CAPABILITY_BULK_VALUES)

# A response of a streaming call carries typed items up to this many encoded bytes, and
# an exporter takes up to this many ready items at a time to pack them.
BATCH_BYTES = 1 << 19
BATCH_ITEMS = 1024

# Status details travel in a trailer, and gRPC refuses a response whose metadata passes
# 16 KiB (the client would get neither the message nor the error's class): longer messages
# are cut.
MAX_DETAILS_CHARACTERS = 4096


def typed_values_supported(capabilities: Iterable[str]) -> bool:
    """Whether an exporter that advertises `capabilities` takes and sends typed values."""
    return CAPABILITY_TYPED_VALUES in capabilities


def bulk_values_supported(capabilities: Iterable[str]) -> bool:
    """Whether an exporter that advertises `capabilities` takes and sends large bytes beside its calls."""
    return CAPABILITY_BULK_VALUES in capabilities


class BulkValues:
    """The large bytes values of one message, collected while it is encoded: each gets a
    uuid, which the message holds in its place (a `jumpstarter.common.values.BulkSink`)."""

    __slots__ = ("values",)

    def __init__(self) -> None:
        self.values: dict[str, memoryview] = {}

    def __call__(self, message: TypedValue, view: memoryview) -> None:
        if view.nbytes > BULK_MAX_BYTES:
            raise ValueError(
                f"a bytes value of {view.nbytes >> 20} MiB is over the {BULK_MAX_BYTES >> 20} MiB one value may take; "
                "send it with client.resource() or a byte stream"
            )
        uuid = str(uuid4())
        message.bulk_value.uuid = uuid
        message.bulk_value.size = view.nbytes
        self.values[uuid] = view

    def __bool__(self) -> bool:
        return bool(self.values)


def keepalive_supported(capabilities: Iterable[str]) -> bool:
    """Whether an exporter that advertises `capabilities` takes pings every KEEPALIVE_SECONDS."""
    return CAPABILITY_KEEPALIVE in capabilities


# -- the request: client encodes, exporter decodes ------------------------------------------


def encode_call(
    message_type: type[Message],
    uuid: str,
    method: str,
    args: Sequence[Any],
    kwargs: dict[str, Any],
    *,
    typed: bool,
    bulk: BulkValues | None = None,
) -> bytes:
    """The encoded DriverCallRequest or StreamingDriverCallRequest (`message_type`) of a call of
    `method` of driver `uuid`, as it is sent.

    With `bulk` (typed values only: the exporter takes bulk values), large bytes arguments
    are collected there instead of being encoded, and the request asks for a result whose
    large bytes travel the same way.

    Raises DriverInvalidArgument, saying what to do, for arguments that cannot travel in the
    negotiated encoding or that exceed the exporter's message limit.
    """
    request: Any = message_type(uuid=uuid, method=method)
    try:
        if typed:
            typed_args = request.typed_args
            typed_args.SetInParent()
            for value in args:
                fill_typed(typed_args.args.add(), value, bulk)
            for key, value in kwargs.items():
                keyword = typed_args.kwargs.add(name=key)
                fill_typed(keyword.value, value, bulk)
            if bulk is not None:
                typed_args.bulk_results = True
                typed_args.bulk_values = len(bulk.values)
        elif kwargs:
            raise ValueError(
                "keyword arguments need an exporter that supports typed values; this one (such as "
                f"jumpstarter 0.9.0) takes positional arguments only: pass {', '.join(kwargs)} by position"
            )
        else:
            for value in args:
                fill_json(request.args.add(), value)
    except (TypeError, ValueError) as error:
        raise DriverInvalidArgument(f"{method}(): {error}") from None
    limit = MAX_MESSAGE_BYTES if typed else LEGACY_MAX_MESSAGE_BYTES
    # Serialized here, once: the size is that of the bytes sent (ByteSize() would serialize a large message twice).
    data: bytes = request.SerializeToString()
    if len(data) >= LARGE_MESSAGE_BYTES:
        tune_allocator()  # before gRPC's buffers of this call are allocated
    if len(data) > limit:
        raise DriverInvalidArgument(
            f"{method}(): the arguments take {len(data) >> 20} MiB, over the {limit >> 20} MiB a call "
            "to this exporter may carry; send bulk data with client.resource() or a byte stream"
        )
    return data


@dataclass(frozen=True, slots=True)
class DecodedCall:
    """The arguments of a call as the exporter received them, and the encoding to answer in."""

    typed: bool
    args: list[Any]
    kwargs: dict[str, Any]
    bulk_results: bool = False
    """The caller takes a result whose large bytes travel beside the response."""


# The values one call may carry, nested ones included (an empty value is two bytes on the wire).
MAX_CALL_VALUES = 1_000_000
# How deep values may nest, as protobuf's parser allows.
_MAX_DEPTH = 100


def parse_request(message_type: type[Message], data: bytes) -> Any:
    """The request of type `message_type` in `data`; CallRefused (INVALID_ARGUMENT) if it holds
    more than MAX_CALL_VALUES values, nests deeper than protobuf allows, or is no such message.

    The values are counted on the wire, before anything is parsed; below 2 MB a request
    cannot hold too many, and nothing is counted.
    """
    if len(data) > 2 * MAX_CALL_VALUES:
        try:
            count = _count_messages(data, cast("Descriptor", message_type.DESCRIPTOR), MAX_CALL_VALUES)
        except (IndexError, ValueError):
            count = 0  # not a valid message: the parser says why
        if count > MAX_CALL_VALUES:
            raise CallRefused(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"the call carries more than {MAX_CALL_VALUES:,} values, the most a call may carry; "
                "send bulk data as bytes, through client.resource() or a byte stream",
            )
    try:
        return message_type.FromString(data)
    except DecodeError as error:
        raise CallRefused(grpc.StatusCode.INVALID_ARGUMENT, f"the request is no valid call: {error}") from None


@functools.cache
def _message_fields(descriptor: Descriptor) -> dict[int, Descriptor]:
    return {
        field.number: field.message_type
        for field in descriptor.fields
        if field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type is not None
    }


def holds_few_fields(message_type: type[Message], data: bytes, limit: int) -> bool:
    """Whether the `message_type` in `data` holds at most `limit` fields, nested ones included,
    read on the wire up to just past `limit` (a request parsed about as fast as its bytes are
    copied: what takes long is many small values). False if `data` is no valid message."""
    try:
        return _count_messages(data, cast("Descriptor", message_type.DESCRIPTOR), limit, every_field=True) <= limit
    except (IndexError, ValueError):
        return False


def _count_messages(data: bytes, descriptor: Descriptor, limit: int, *, every_field: bool = False) -> int:
    """How many messages `data` (a `descriptor` message) holds, counting up to just past `limit`;
    with `every_field`, how many fields of any type.

    Reads the wire format without building anything. ValueError or IndexError: `data` is
    not a valid message (or nests too deep), which the parser will say better.
    """
    view = memoryview(data)
    count = 0
    pending = [(0, len(data), descriptor, 0)]
    while pending:
        position, end, message, depth = pending.pop()
        fields = _message_fields(message)
        while position < end:
            key, position = _varint(view, position)
            wire_type = key & 7
            inner = fields.get(key >> 3) if wire_type == 2 else None
            if every_field or inner is not None:
                count += 1
                if count > limit:
                    return count
            if wire_type == 0:
                _, position = _varint(view, position)
            elif wire_type == 1:
                position += 8
            elif wire_type == 5:
                position += 4
            elif wire_type == 2:
                length, position = _varint(view, position)
                if inner is not None:
                    if depth >= _MAX_DEPTH:
                        raise ValueError("nested too deep")
                    pending.append((position, position + length, inner, depth + 1))
                position += length
            else:
                raise ValueError(f"wire type {wire_type}")
        if position != end:
            raise ValueError("a field runs past its message")
    return count


def _varint(view: memoryview, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = view[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, position
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def decode_call(request: Any, take_bulk: BulkResolver | None = None) -> DecodedCall:
    """The arguments of a DriverCallRequest or StreamingDriverCallRequest.

    `take_bulk` gives the bytes of each BulkValue the arguments hold (it may refuse with
    CallRefused); a request that holds one it did not announce, or that an exporter without
    `take_bulk` receives, is refused.
    """
    if request.HasField("typed_args"):
        typed_args = request.typed_args
        try:
            if typed_args.bulk_values and take_bulk is not None:
                with bulk_values_resolved(take_bulk):
                    return _decode_typed_call(typed_args)
            return _decode_typed_call(typed_args)
        except ValueError as error:
            raise CallRefused(grpc.StatusCode.INVALID_ARGUMENT, f"the request is no valid call: {error}") from None
    return DecodedCall(False, [decode_json(value) for value in request.args], {})


def _decode_typed_call(typed_args: Any) -> DecodedCall:
    args, kwargs = typed_args.args, typed_args.kwargs
    return DecodedCall(
        True,
        [decode_typed(value) for value in args] if args else [],  # the common empty case builds nothing
        {keyword.name: decode_typed(keyword.value) for keyword in kwargs} if kwargs else {},
        typed_args.bulk_results,
    )


# -- results and streamed items: exporter encodes, client decodes ---------------------------


class CallRefused(Exception):
    """The exporter refused a call itself: no driver raised this (an unknown driver or method,
    bad arguments, a result that cannot travel...). Travels as `code` with no error class."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def _fill(message: Any, value: Any, typed: bool, method: str) -> None:
    try:
        fill_typed(message, value) if typed else fill_json(message, value)
    except (TypeError, ValueError) as error:
        raise CallRefused(
            grpc.StatusCode.UNKNOWN, f"{method}() returned a value that cannot be sent: {error}"
        ) from None


def _check_legacy_size(size: int, method: str) -> None:
    """Refuse a result of `size` encoded bytes that a JSON-only client (such as jumpstarter 0.9.0) could not receive."""
    if size > LEGACY_MAX_MESSAGE_BYTES:
        raise CallRefused(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"{method}() returned {size / 2**20:.1f} MiB, over the 4 MiB this client accepts in one message; "
            "return bulk data through a resource or a byte stream",
        )


def encode_result(value: Any, *, typed: bool, method: str, bulk: BulkValues | None = None) -> bytes:
    """The encoded DriverCallResponse carrying the result of a unary call, as it is sent
    (CallRefused if it cannot travel).

    With `bulk` (the request asked for it), large bytes are collected there instead of being
    encoded; the caller keeps them for the client to download.
    """
    response = jumpstarter_pb2.DriverCallResponse()
    if bulk is not None:
        try:
            fill_typed(response.typed_result, value, bulk)
        except (TypeError, ValueError) as error:
            raise CallRefused(
                grpc.StatusCode.UNKNOWN, f"{method}() returned a value that cannot be sent: {error}"
            ) from None
        response.bulk_values = len(bulk.values)
    elif typed:
        if type(value) is bytes:
            return _typed_bytes_response(value)
        _fill(response.typed_result, value, True, method)
    else:
        _fill(response.result, value, False, method)
        data: bytes = response.SerializeToString()
        _check_legacy_size(len(data), method)
        return data
    return response.SerializeToString()


def _length_delimited_key(number: int) -> bytes:
    return _encoded_varint(number << 3 | 2)


def _encoded_varint(number: int) -> bytes:
    encoded = bytearray()
    while number >= 0x80:
        encoded.append(number & 0x7F | 0x80)
        number >>= 7
    encoded.append(number)
    return bytes(encoded)


_TYPED_RESULT_KEY = _length_delimited_key(
    jumpstarter_pb2.DriverCallResponse.DESCRIPTOR.fields_by_name["typed_result"].number
)
_BYTES_VALUE_KEY = _length_delimited_key(values_pb2.TypedValue.DESCRIPTOR.fields_by_name["bytes_value"].number)


def _typed_bytes_response(value: bytes) -> bytes:
    """A DriverCallResponse whose typed result is `value`, encoded as protobuf encodes it, with
    one copy of the bytes: a message copies them in when filled, and twice more when serialized
    (for a 1 MiB result, 25 microseconds instead of 80 on a 2-core virtual machine; results are
    often bytes read from a device)."""
    inner = _BYTES_VALUE_KEY + _encoded_varint(len(value))
    return b"".join((_TYPED_RESULT_KEY, _encoded_varint(len(inner) + len(value)), inner, value))


def parse_result(data: bytes) -> jumpstarter_pb2.DriverCallResponse:
    """The DriverCallResponse in `data`, as a client receives it."""
    if len(data) >= LARGE_MESSAGE_BYTES:
        tune_allocator()  # a client that receives large results: its next calls reuse the buffers
    return jumpstarter_pb2.DriverCallResponse.FromString(data)


def bulk_references(response: jumpstarter_pb2.DriverCallResponse) -> dict[str, int]:
    """The uuid and size of each BulkValue of a response (whose `bulk_values` is not 0), to download."""
    references: dict[str, int] = {}

    def note(uuid: str, size: int) -> None:
        references[uuid] = size

    with bulk_values_resolved(note):
        decode_typed(response.typed_result)
    return references


def decode_result(response: jumpstarter_pb2.DriverCallResponse, bulk: Mapping[str, bytes] | None = None) -> Any:
    """The result of a unary call (see `parse_result`); `bulk` holds the bytes of its BulkValues, by uuid."""
    if response.HasField("typed_result"):
        if bulk is not None:
            with bulk_values_resolved(lambda uuid, size: bulk[uuid]):
                return decode_typed(response.typed_result)
        return decode_typed(response.typed_result)
    return decode_json(response.result)


def item_encoder(*, typed: bool, method: str) -> Callable[[Any], Message]:
    """How the items of a streaming call are encoded: a TypedValue each, to be packed by
    `streaming_responses`, or a whole JSON response each for JSON-only clients.

    The encoder may run in a worker thread, beside the driver's generator.
    """
    if typed:

        def encode_typed_item(item: Any) -> Message:
            message = values_pb2.TypedValue()
            _fill(message, item, True, method)
            return message

        return encode_typed_item

    def encode_json_item(item: Any) -> Message:
        response = jumpstarter_pb2.StreamingDriverCallResponse()
        _fill(response.result, item, False, method)
        _check_legacy_size(response.ByteSize(), method)
        return response

    return encode_json_item


def streaming_responses(items: list[Any], *, typed: bool) -> Iterator[jumpstarter_pb2.StreamingDriverCallResponse]:
    """The responses carrying encoded items: typed ones packed up to BATCH_BYTES, JSON ones as they are."""
    if not typed:
        yield from items
        return
    response = jumpstarter_pb2.StreamingDriverCallResponse()
    size = 0
    for item in items:
        item_size = item.ByteSize()
        if size and size + item_size > BATCH_BYTES:
            yield response
            response = jumpstarter_pb2.StreamingDriverCallResponse()
            size = 0
        response.typed_results.append(item)
        size += item_size
    if response.typed_results:
        yield response


def decode_items(response: jumpstarter_pb2.StreamingDriverCallResponse) -> list[Any]:
    """The items of one streaming response: a batch of typed values, or one JSON value."""
    if response.typed_results:
        return [decode_typed(item) for item in response.typed_results]
    return [decode_json(response.result)]


# -- errors: exporter maps an exception to a status, client maps it back ---------------------


@dataclass(frozen=True)
class WireStatus:
    """How a failed call travels: a status code, details, and trailing metadata."""

    code: grpc.StatusCode
    details: str
    metadata: tuple[tuple[str, str], ...]
    raised_by_driver: bool


def status_for(error: BaseException) -> WireStatus:
    """The status a failed call travels as."""
    if isinstance(error, CallRefused):
        return WireStatus(error.code, _details(error), (), raised_by_driver=False)
    return WireStatus(
        _code(error), _details(error), ((ERROR_CLASS_METADATA_KEY, type(error).__name__),), raised_by_driver=True
    )


def end_call(
    context: grpc.aio.ServicerContext[Any, Any],
    code: grpc.StatusCode,
    details: str,
    trailing_metadata: Sequence[tuple[str, str | bytes]] = (),
) -> None:
    """End a server-side call with this status when its handler returns.

    Not `context.abort()`: the exception it raises is kept with its traceback, and with it the
    handler's frame and everything that frame holds (the request; in a forwarding handler, the
    call to the next hop and so that hop's channel, which then keeps dialling a connection that
    is gone), past the call, until gRPC and the cyclic collector let go of it.
    """
    if trailing_metadata:
        context.set_trailing_metadata(tuple(trailing_metadata))
    context.set_code(code)
    context.set_details(details)


def _code(error: BaseException) -> grpc.StatusCode:
    """The status code of a driver's exception; the more specific classes come first."""
    if isinstance(error, ExporterNotReady):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(error, NotImplementedError):
        return grpc.StatusCode.UNIMPLEMENTED
    if isinstance(error, ValueError):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(error, TimeoutError):
        return grpc.StatusCode.DEADLINE_EXCEEDED
    if isinstance(error, ConnectionError):
        return grpc.StatusCode.UNAVAILABLE
    if isinstance(error, OSError):
        return grpc.StatusCode.INTERNAL
    return grpc.StatusCode.UNKNOWN


def _details(error: BaseException) -> str:
    """The message a client shows: the driver's own text, or the exception's name when it has none."""
    details = str(error) or type(error).__name__
    if len(details) > MAX_DETAILS_CHARACTERS:
        cut = len(details) - MAX_DETAILS_CHARACTERS
        details = f"{details[:MAX_DETAILS_CHARACTERS]}... ({cut} more characters in the exporter's log)"
    return details


_CLASSES: dict[grpc.StatusCode, type[DriverError]] = {
    grpc.StatusCode.FAILED_PRECONDITION: ExporterNotReady,
    grpc.StatusCode.NOT_FOUND: DriverMethodNotImplemented,
    grpc.StatusCode.UNIMPLEMENTED: DriverMethodNotImplemented,
    grpc.StatusCode.INVALID_ARGUMENT: DriverInvalidArgument,
    grpc.StatusCode.DEADLINE_EXCEEDED: DriverTimeout,
    grpc.StatusCode.UNAVAILABLE: DriverConnectionError,
}


def error_from_status(
    code: grpc.StatusCode,
    details: str | None,
    trailing_metadata: Iterable[tuple[str, str | bytes]] | None,
    method: str,
) -> DriverError:
    """The exception a client raises for a failed call of `method`."""
    raised_as = dict(trailing_metadata or ()).get(ERROR_CLASS_METADATA_KEY)
    if isinstance(raised_as, bytes):  # a text key: gRPC hands over str, but the type allows bytes
        raised_as = raised_as.decode(errors="replace")
    message = details or code.name
    error_class = _CLASSES.get(code, DriverError)
    if raised_as is None:
        # No driver raised this: the exporter, or the connection to it, failed.
        if code == grpc.StatusCode.UNAVAILABLE:
            message = f"lost the connection to the exporter: {message}"
            error_class = ExporterConnectionLost
        elif code == grpc.StatusCode.CANCELLED:
            message = f"the call was cancelled: {message}"
        elif code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            message = (
                f"{message} (a call carries at most {MAX_MESSAGE_BYTES >> 20} MiB, 4 MiB with older exporters; "
                "send bulk data with client.resource() or a byte stream)"
            )
    error = error_class(message)
    error.add_note(
        f"in a call of {method!r}"
        + (f" where the driver raised {raised_as}" if raised_as else "")
        + f" (gRPC status {code.name})"
    )
    return error
