"""Typed values between our peers, JSON values with peers that do not advertise them.

The original jumpstarter 0.9.0 is exercised for real in tests/interop; these tests pin down
each side of the negotiation on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf import empty_pb2

from jumpstarter.client import DriverClient, DriverInvalidArgument, connect
from jumpstarter.common.values import decode_json, encode_json
from jumpstarter.driver import Driver, export
from jumpstarter.exporter import _servicer
from jumpstarter.v1 import jumpstarter_pb2, jumpstarter_pb2_grpc


@dataclass(kw_only=True)
class Probe(Driver):
    @classmethod
    def client(cls) -> str:
        return "jumpstarter.client.DriverClient"

    @export
    def types(self, *args: Any, **kwargs: Any) -> list[str]:
        return [type(value).__name__ for value in (*args, *kwargs.values())]

    @export
    def scale(self, value: int, factor: int = 2) -> int:
        return value * factor

    @export
    def echo(self, value: Any) -> Any:
        return value

    @export
    def items(self, count: int) -> Iterator[dict[str, int]]:
        for number in range(count):
            yield {"n": number}


@pytest.fixture
def exporter(exporter_socket: Callable[[Driver], AbstractContextManager[str]]) -> Iterator[str]:
    with exporter_socket(Probe()) as path:
        yield path


@pytest.fixture
def json_only_exporter(
    exporter_socket: Callable[[Driver], AbstractContextManager[str]], monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """An exporter that, like the original, does not advertise typed values."""
    monkeypatch.setattr(_servicer, "EXPORTER_CAPABILITIES", ("something-else",))
    with exporter_socket(Probe()) as path:
        yield path


# -- a client that speaks JSON values only, against our exporter -----------------------------


def json_call(client: DriverClient, method: str, *args: Any) -> Any:
    stub = jumpstarter_pb2_grpc.ExporterServiceStub(client.connection.sync_channel)
    request = jumpstarter_pb2.DriverCallRequest(
        uuid=str(client.uuid), method=method, args=[encode_json(a) for a in args]
    )
    response = stub.DriverCall(request)
    assert not response.HasField("typed_result")
    return decode_json(response.result)


def test_the_exporter_answers_json_requests_with_json(exporter: str) -> None:
    with connect(exporter) as client:
        assert json_call(client, "types", 5, "s", None) == ["float", "str", "NoneType"]
        # A float that holds an int becomes the int the annotation names.
        assert json_call(client, "scale", 5) == 10.0
        assert json_call(client, "echo", {"a": [1, True]}) == {"a": [1.0, True]}


def test_results_a_json_client_cannot_receive_are_refused_clearly(exporter: str) -> None:
    with connect(exporter) as client, pytest.raises(grpc.RpcError) as raised:
        json_call(client, "echo", "x" * (5 * 2**20))
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "echo() returned 5.0 MiB, over the 4 MiB this client accepts in one message" in raised.value.details()


def test_the_exporter_streams_json_items_one_per_message(exporter: str) -> None:
    with connect(exporter) as client:
        stub = jumpstarter_pb2_grpc.ExporterServiceStub(client.connection.sync_channel)
        request = jumpstarter_pb2.StreamingDriverCallRequest(
            uuid=str(client.uuid), method="items", args=[encode_json(3)]
        )
        responses = list(stub.StreamingDriverCall(request))
    assert [decode_json(response.result) for response in responses] == [{"n": 0.0}, {"n": 1.0}, {"n": 2.0}]
    assert all(not response.typed_results for response in responses)


def test_our_exporter_advertises_typed_values(exporter: str) -> None:
    with connect(exporter) as client:
        stub = jumpstarter_pb2_grpc.ExporterServiceStub(client.connection.sync_channel)
        assert "typed-values" in stub.GetReport(empty_pb2.Empty()).capabilities
        assert client.connection.typed


# -- our client, against an exporter without typed values --------------------------------------


def test_the_client_falls_back_to_json_values(json_only_exporter: str) -> None:
    with connect(json_only_exporter) as client:
        assert not client.connection.typed
        assert client.call("types", 5, b"text") == ["float", "str"]
        assert client.call("scale", 4) == 8.0
        assert list(client.streamingcall("items", 2)) == [{"n": 0.0}, {"n": 1.0}]


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((), {"value": 1}, "keyword arguments need an exporter that supports typed values"),
        ((2**60,), {}, "the integer 1152921504606846976 cannot be sent exactly"),
        ((b"\xff",), {}, "bytes that are not UTF-8 cannot be sent"),
        ((b"\0" * (5 * 2**20),), {}, "over the 4 MiB a call to this exporter may carry"),
    ],
)
def test_what_json_cannot_carry_is_refused_clearly(
    json_only_exporter: str, args: tuple, kwargs: dict, message: str
) -> None:
    with connect(json_only_exporter) as client:
        with pytest.raises(DriverInvalidArgument, match=message):
            client.call("echo", *args, **kwargs)
        assert client.call("echo", "still usable") == "still usable"
