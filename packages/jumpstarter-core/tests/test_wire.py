"""The wire format of a call, round trip: what the client encodes the exporter decodes, and back.

These run `jumpstarter.common.wire` alone, without a connection; test_negotiation.py and
tests/interop run the same format over real sockets, against our peers and the original's.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from jumpstarter.common.exceptions import (
    DriverConnectionError,
    DriverError,
    DriverInvalidArgument,
    DriverMethodNotImplemented,
    DriverTimeout,
    ExporterConnectionLost,
    ExporterNotReady,
)
from jumpstarter.common.protocol import ERROR_CLASS_METADATA_KEY
from jumpstarter.common.wire import (
    BATCH_BYTES,
    EXPORTER_CAPABILITIES,
    MAX_DETAILS_CHARACTERS,
    CallRefused,
    decode_call,
    decode_items,
    decode_result,
    encode_call,
    encode_result,
    error_from_status,
    holds_few_fields,
    item_encoder,
    parse_request,
    parse_result,
    status_for,
    streaming_responses,
    typed_values_supported,
)
from jumpstarter.v1 import jumpstarter_pb2

UUID = "8c1f1f36-5d3e-4c0e-9a4e-2f4f9a0b7d11"
REQUESTS = [jumpstarter_pb2.DriverCallRequest, jumpstarter_pb2.StreamingDriverCallRequest]


def test_our_exporters_advertise_typed_values() -> None:
    assert typed_values_supported(EXPORTER_CAPABILITIES)
    assert not typed_values_supported([])  # the original jumpstarter 0.9.0 advertises nothing


# -- arguments -----------------------------------------------------------------------------


@pytest.mark.parametrize("message_type", REQUESTS)
def test_typed_arguments_arrive_exactly(message_type: Any) -> None:
    args = (2**70, b"\x00\xff", 1.5, None, [1, (2, 3)], {(1, 2): "pair"})
    kwargs = {"count": -(2**63), "name": "relay"}
    request = parse_request(message_type, encode_call(message_type, UUID, "flash", args, kwargs, typed=True))
    assert (request.uuid, request.method) == (UUID, "flash")
    call = decode_call(request)
    assert call.typed
    assert call.args == [2**70, b"\x00\xff", 1.5, None, [1, [2, 3]], {(1, 2): "pair"}]
    assert call.kwargs == kwargs


@pytest.mark.parametrize("message_type", REQUESTS)
def test_json_arguments_arrive_as_json_would_carry_them(message_type: Any) -> None:
    request = parse_request(
        message_type, encode_call(message_type, UUID, "set", (5, "text", b"utf-8", [True]), {}, typed=False)
    )
    assert not request.HasField("typed_args")
    call = decode_call(request)
    assert not call.typed
    assert call.args == [5.0, "text", "utf-8", [True]]
    assert call.kwargs == {}


@pytest.mark.parametrize(
    ("args", "kwargs", "typed", "message"),
    [
        ((), {"value": 1}, False, r"set\(\): keyword arguments need an exporter that supports typed values"),
        ((2**60,), {}, False, r"set\(\): the integer 1152921504606846976 cannot be sent exactly"),
        ((b"\xff",), {}, False, r"set\(\): bytes that are not UTF-8 cannot be sent"),
        ((object(),), {}, True, r"set\(\): cannot send a value of type object"),
        (("x" * (5 << 20),), {}, False, r"set\(\): the arguments take 5 MiB, over the 4 MiB a call"),
    ],
)
def test_arguments_that_cannot_travel_are_refused_before_sending(
    args: tuple[Any, ...], kwargs: dict[str, Any], typed: bool, message: str
) -> None:
    with pytest.raises(DriverInvalidArgument, match=message):
        encode_call(jumpstarter_pb2.DriverCallRequest, UUID, "set", args, kwargs, typed=typed)


def test_typed_calls_may_carry_more_than_the_original_accepts() -> None:
    request = encode_call(jumpstarter_pb2.DriverCallRequest, UUID, "write", (b"\0" * (5 << 20),), {}, typed=True)
    assert decode_call(parse_request(jumpstarter_pb2.DriverCallRequest, request)).args == [b"\0" * (5 << 20)]


# -- results -------------------------------------------------------------------------------


def test_results_arrive_in_the_encoding_of_the_request() -> None:
    value = {"big": 2**64, "raw": b"\x80", "items": (1, 2)}
    assert decode_result(parse_result(encode_result(value, typed=True, method="read"))) == {
        "big": 2**64,
        "raw": b"\x80",
        "items": [1, 2],
    }
    assert decode_result(parse_result(encode_result({"n": 3, "items": (1, 2)}, typed=False, method="read"))) == {
        "n": 3.0,
        "items": [1.0, 2.0],
    }


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 128, 16_380, 16_381, 16_383, 16_384, (2 << 20) - 4, 2 << 20])
def test_a_bytes_result_is_encoded_as_protobuf_encodes_it(size: int) -> None:
    # Bytes results are encoded by hand (one copy of the value): the same bytes as the message
    # filled and serialized by protobuf, at every size where a length takes one more byte.
    value = bytes(range(256)) * (size // 256) + bytes(size % 256)
    message = jumpstarter_pb2.DriverCallResponse()
    message.typed_result.bytes_value = value
    assert encode_result(value, typed=True, method="read") == message.SerializeToString()
    assert decode_result(parse_result(encode_result(value, typed=True, method="read"))) == value


def test_results_that_cannot_travel_are_refused_by_the_exporter() -> None:
    with pytest.raises(CallRefused, match=r"read\(\) returned a value that cannot be sent") as unsendable:
        encode_result(object(), typed=True, method="read")
    assert unsendable.value.code == grpc.StatusCode.UNKNOWN
    with pytest.raises(CallRefused, match=r"read\(\) returned a value that cannot be sent: bytes that are not UTF-8"):
        encode_result(b"\xff", typed=False, method="read")
    with pytest.raises(CallRefused, match=r"read\(\) returned 5.0 MiB, over the 4 MiB this client accepts") as large:
        encode_result("x" * (5 << 20), typed=False, method="read")
    assert large.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    # A typed client takes it.
    assert len(decode_result(parse_result(encode_result("x" * (5 << 20), typed=True, method="read")))) == 5 << 20


# -- streamed items ------------------------------------------------------------------------


def test_typed_items_are_packed_in_order_into_bounded_responses() -> None:
    encode = item_encoder(typed=True, method="count")
    items = [*range(3000), b"\x01" * (BATCH_BYTES + 10), "after"]
    responses = list(streaming_responses([encode(item) for item in items], typed=True))
    # Small items share responses; one item larger than a batch travels alone.
    assert 1 < len(responses) < len(items)
    assert all(response.ByteSize() <= BATCH_BYTES + 64 or len(response.typed_results) == 1 for response in responses)
    assert [item for response in responses for item in decode_items(response)] == items


def test_json_items_travel_one_per_response() -> None:
    encode = item_encoder(typed=False, method="count")
    responses = list(streaming_responses([encode({"n": n}) for n in range(3)], typed=False))
    assert len(responses) == 3
    assert [item for response in responses for item in decode_items(response)] == [{"n": 0.0}, {"n": 1.0}, {"n": 2.0}]


def test_a_json_item_too_large_for_the_original_is_refused() -> None:
    with pytest.raises(CallRefused, match=r"count\(\) returned 5.0 MiB"):
        item_encoder(typed=False, method="count")("x" * (5 << 20))


# -- errors --------------------------------------------------------------------------------


def round_trip(error: BaseException, method: str = "switch") -> DriverError:
    status = status_for(error)
    return error_from_status(status.code, status.details, status.metadata, method)


@pytest.mark.parametrize(
    ("error", "code", "client_class"),
    [
        (ValueError("voltage out of range"), grpc.StatusCode.INVALID_ARGUMENT, DriverInvalidArgument),
        (NotImplementedError("cannot measure"), grpc.StatusCode.UNIMPLEMENTED, DriverMethodNotImplemented),
        (TimeoutError("no answer"), grpc.StatusCode.DEADLINE_EXCEEDED, DriverTimeout),
        (ConnectionResetError("port went away"), grpc.StatusCode.UNAVAILABLE, DriverConnectionError),
        (FileNotFoundError(2, "No such file"), grpc.StatusCode.INTERNAL, DriverError),
        (ExporterNotReady("hold on"), grpc.StatusCode.FAILED_PRECONDITION, ExporterNotReady),
        (RuntimeError("relay stuck"), grpc.StatusCode.UNKNOWN, DriverError),
    ],
)
def test_a_driver_error_comes_back_as_its_client_class(
    error: BaseException, code: grpc.StatusCode, client_class: type[DriverError]
) -> None:
    status = status_for(error)
    assert status.code == code and status.raised_by_driver
    assert status.metadata == ((ERROR_CLASS_METADATA_KEY, type(error).__name__),)
    raised = round_trip(error)
    assert type(raised) is client_class
    assert str(raised) == str(error)
    note = f"in a call of 'switch' where the driver raised {type(error).__name__} (gRPC status {code.name})"
    assert raised.__notes__ == [note]


def test_a_driver_connection_error_is_not_a_lost_exporter() -> None:
    assert not isinstance(round_trip(ConnectionResetError("port went away")), ExporterConnectionLost)


def test_refusals_of_the_exporter_name_no_driver_error() -> None:
    status = status_for(CallRefused(grpc.StatusCode.NOT_FOUND, "Relay has no exported method 'of'"))
    assert (status.code, status.metadata, status.raised_by_driver) == (grpc.StatusCode.NOT_FOUND, (), False)
    raised = round_trip(CallRefused(grpc.StatusCode.NOT_FOUND, "Relay has no exported method 'of'"))
    assert type(raised) is DriverMethodNotImplemented
    assert raised.__notes__ == ["in a call of 'switch' (gRPC status NOT_FOUND)"]


def test_transport_failures_say_what_happened() -> None:
    lost = error_from_status(grpc.StatusCode.UNAVAILABLE, "socket closed", (), "on")
    assert type(lost) is ExporterConnectionLost
    assert str(lost) == "lost the connection to the exporter: socket closed"
    assert str(error_from_status(grpc.StatusCode.CANCELLED, None, None, "on")) == "the call was cancelled: CANCELLED"
    large = error_from_status(grpc.StatusCode.RESOURCE_EXHAUSTED, "too big", (), "on")
    assert "a call carries at most 128 MiB, 4 MiB with older exporters" in str(large)


def test_messages_are_named_when_empty_and_cut_when_long() -> None:
    assert str(round_trip(KeyError())) == "KeyError"
    details = status_for(RuntimeError("x" * (MAX_DETAILS_CHARACTERS + 10))).details
    assert details == "x" * MAX_DETAILS_CHARACTERS + "... (10 more characters in the exporter's log)"


# -- how many values a request may carry ------------------------------------------------------


def _json_args(count: int) -> bytes:
    """A DriverCallRequest with `count` empty JSON values as arguments (two bytes each)."""
    return jumpstarter_pb2.DriverCallRequest(uuid=UUID, method="on").SerializeToString() + b"\x1a\x00" * count


def test_a_request_with_more_values_than_a_call_may_carry_is_refused_unparsed() -> None:
    with pytest.raises(CallRefused, match=r"more than 1,000,000 values") as refused:
        parse_request(jumpstarter_pb2.DriverCallRequest, _json_args(1_000_001))
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    # Nested values count too: one argument, a list of a million and one.
    nested = encode_call(jumpstarter_pb2.DriverCallRequest, UUID, "on", ([None] * 1_000_001,), {}, typed=True)
    with pytest.raises(CallRefused, match=r"more than 1,000,000 values"):
        parse_request(jumpstarter_pb2.DriverCallRequest, nested)


def test_large_requests_of_few_values_are_parsed() -> None:
    image = bytes(8 << 20)
    request = encode_call(jumpstarter_pb2.DriverCallRequest, UUID, "flash", (image,), {"retries": 3}, typed=True)
    parsed = parse_request(jumpstarter_pb2.DriverCallRequest, request)
    assert decode_call(parsed).args == [image] and decode_call(parsed).kwargs == {"retries": 3}
    assert len(decode_call(parse_request(jumpstarter_pb2.DriverCallRequest, _json_args(999_999))).args) == 999_999


def test_requests_of_few_fields_are_told_apart_on_the_wire() -> None:
    call = jumpstarter_pb2.DriverCallRequest
    one_large_value = encode_call(call, UUID, "write", (bytes(1 << 20),), {"text": "x" * (1 << 20)}, typed=True)
    assert holds_few_fields(call, one_large_value, 16)
    assert not holds_few_fields(call, encode_call(call, UUID, "write", ([1, 2, 3] * 10,), {}, typed=True), 16)
    # Fields that are no values count too (a parser reads each), and reading stops past the limit.
    repeated = jumpstarter_pb2.DriverCallRequest(uuid=UUID).SerializeToString() * 1_000_000
    assert not holds_few_fields(call, repeated, 16)
    assert not holds_few_fields(call, b"\x0a\xff\xff", 16)  # no valid message


def test_a_request_that_is_no_call_is_refused() -> None:
    with pytest.raises(CallRefused, match="the request is no valid call") as refused:
        parse_request(jumpstarter_pb2.DriverCallRequest, b"\x0a\xff\xff")
    assert refused.value.code == grpc.StatusCode.INVALID_ARGUMENT
    deep: list[Any] = []
    for _ in range(150):
        deep = [deep]
    nested = encode_call(jumpstarter_pb2.DriverCallRequest, UUID, "on", (deep,), {}, typed=True)
    padded = nested + b"\x0a" + bytes([len(UUID)]) + UUID.encode() + b"\x12\x00" * (1_100_000)
    for data in (nested, padded):  # deeper than protobuf parses, short or long
        with pytest.raises(CallRefused, match="the request is no valid call"):
            parse_request(jumpstarter_pb2.DriverCallRequest, data)
