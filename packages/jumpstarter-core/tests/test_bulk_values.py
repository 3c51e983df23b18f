"""Large bytes values beside their call ("bulk values"): where they may be, and what a peer may not do.

Our client sends bytes of BULK_MIN_BYTES or more over streams of their own, wherever they
sit in the arguments, and receives large results the same way (the 256 MiB figures, with
real processes, are in tests/cli/test_large_values.py). The exporter refuses what a
careless or hostile peer sends instead: values it never received, values used twice,
uploads shorter or longer than announced, results that are not there, references the
request did not announce.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

from jumpstarter.client import DriverClient, DriverInvalidArgument
from jumpstarter.common.handles import BulkDownloadRequest, BulkUploadRequest
from jumpstarter.common.protocol import BULK_MIN_BYTES, CHANNEL_OPTIONS
from jumpstarter.driver import Driver, export
from jumpstarter.exporter import _bulk, _servicer
from jumpstarter.testing import serve, serve_socket
from jumpstarter.v1 import jumpstarter_pb2, jumpstarter_pb2_grpc, router_pb2, router_pb2_grpc

LARGE = BULK_MIN_BYTES + 5


def large(fill: int, size: int = LARGE) -> bytes:
    return bytes([fill]) * size


@dataclass(kw_only=True)
class Store(Driver):
    @classmethod
    def client(cls) -> str:
        return "jumpstarter.client.DriverClient"

    @export
    def echo(self, value: Any) -> Any:
        return value

    @export
    async def aecho(self, value: Any) -> Any:
        return value

    @export
    def sizes(self, *values: bytes, **named: bytes) -> dict[str, int]:
        return {
            **{str(index): len(value) for index, value in enumerate(values)},
            **{k: len(v) for k, v in named.items()},
        }

    @export
    def make(self, size: int) -> bytes:
        return large(1, size)

    @export
    def refuse(self, value: bytes) -> None:
        raise ValueError(f"refused {len(value)} bytes")


@pytest.fixture
def client() -> Iterator[DriverClient]:
    with serve(Store()) as client:
        yield client


@pytest.mark.timeout(60)
def test_large_bytes_anywhere_in_the_arguments_and_the_result(client: DriverClient) -> None:
    value = {"first": [large(1), b"small", large(2)], "second": large(3), "keys stay": {b"k": 1}}
    assert client.call("echo", value) == value
    assert client.call("sizes", large(4), b"x", named=large(5, LARGE + 1)) == {"0": LARGE, "1": 1, "named": LARGE + 1}
    assert client.call("make", LARGE) == large(1)
    # A bytearray or a memoryview is sent without a copy, and arrives as bytes.
    assert client.call("echo", bytearray(large(6))) == large(6)
    assert client.call("echo", memoryview(large(7))) == large(7)
    # Just below the size, bytes travel in the call.
    assert client.call("echo", large(8, BULK_MIN_BYTES - 1)) == large(8, BULK_MIN_BYTES - 1)


@pytest.mark.timeout(60)
def test_async_calls_send_and_receive_large_bytes(client: DriverClient) -> None:
    async def calls() -> list[Any]:
        return [await client.call_async("aecho", [large(9)]), await client.call_async("make", LARGE)]

    assert client.portal.call(calls) == [[large(9)], large(1)]


@pytest.mark.timeout(60)
def test_a_driver_that_fails_on_a_large_argument_fails_as_usual(client: DriverClient) -> None:
    with pytest.raises(DriverInvalidArgument, match=f"refused {LARGE} bytes"):
        client.call("refuse", large(1))
    assert client.call("sizes", large(2)) == {"0": LARGE}  # and the next call is not disturbed


def test_a_value_over_the_largest_is_refused_before_sending(
    client: DriverClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from jumpstarter.common import wire

    monkeypatch.setattr(wire, "BULK_MAX_BYTES", BULK_MIN_BYTES)
    limit = f"over the {BULK_MIN_BYTES >> 20} MiB one value may take; send it with client.resource"
    with pytest.raises(DriverInvalidArgument, match=limit):
        client.call("echo", large(1))


@pytest.mark.timeout(60)
def test_an_exporter_that_takes_no_bulk_values_gets_large_bytes_in_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_servicer, "EXPORTER_CAPABILITIES", ("typed-values",))
    with serve(Store()) as client:
        assert client.call("echo", large(1)) == large(1)
        assert client.call("make", LARGE) == large(1)
        with pytest.raises(DriverInvalidArgument, match=r"over the 128 MiB a call to this exporter may carry"):
            client.call("echo", large(2, 129 << 20))


# -- what a peer may not do (raw gRPC) --------------------------------------------------


@dataclass
class Raw:
    """Raw stubs on an exporter serving a Store, and the Store's uuid."""

    calls: Any
    router: Any
    driver: str
    finished: threading.Event = field(default_factory=threading.Event)
    """Ends the requests of the uploads that send nothing (`announce`)."""

    def upload(self, data: bytes, size: int | None = None, value: str | None = None) -> tuple[str, Iterator[Any]]:
        """Start uploading `data` as a bulk value announced as `size` bytes; its uuid and the responses."""
        value = value or str(uuid.uuid4())
        request = BulkUploadRequest(uuid=value, size=len(data) if size is None else size).to_json()
        frames = [
            router_pb2.StreamRequest(payload=data),
            router_pb2.StreamRequest(frame_type=router_pb2.FRAME_TYPE_GOAWAY),
        ]
        return value, self.router.Stream(iter(frames), metadata=(("request", request),))

    def call(self, method: str, value: str, size: int, *, announced: int = 1, bulk_results: bool = False) -> Any:
        request = jumpstarter_pb2.DriverCallRequest(uuid=self.driver, method=method)
        argument = request.typed_args.args.add()
        argument.bulk_value.uuid = value
        argument.bulk_value.size = size
        request.typed_args.bulk_values = announced
        request.typed_args.bulk_results = bulk_results
        return self.calls.DriverCall(request)

    def announce(self, size: int) -> Any:
        """An upload of `size` bytes that sends none: once its headers came, done() if it was refused."""
        request = BulkUploadRequest(uuid=str(uuid.uuid4()), size=size).to_json()
        call = self.router.Stream(iter(self.finished.wait, True), metadata=(("request", request),))
        call.initial_metadata()
        return call

    def download(self, value: str) -> list[Any]:
        request = BulkDownloadRequest(uuid=value).to_json()
        return list(self.router.Stream(iter(()), metadata=(("request", request),)))


@pytest.fixture
def raw(monkeypatch: pytest.MonkeyPatch) -> Iterator[Raw]:
    monkeypatch.setattr(_bulk, "RESULT_SECONDS", 0.3)
    store = Store()
    with serve_socket(store) as path, grpc.insecure_channel(f"unix://{path}", options=CHANNEL_OPTIONS) as channel:
        raw = Raw(
            jumpstarter_pb2_grpc.ExporterServiceStub(channel),
            router_pb2_grpc.RouterServiceStub(channel),
            str(store.uuid),
        )
        try:
            yield raw
        finally:
            raw.finished.set()


def refused(code: grpc.StatusCode, match: str) -> Any:
    class Refused:
        def __enter__(self) -> None:
            pass

        def __exit__(self, kind: Any, error: Any, traceback: Any) -> bool:
            assert isinstance(error, grpc.RpcError), f"expected {code.name}, got {error!r}"
            assert error.code() == code, error
            assert match in (error.details() or ""), error.details()
            return True

    return Refused()


def test_an_uploaded_value_serves_one_call(raw: Raw) -> None:
    value, responses = raw.upload(b"twelve bytes")
    acknowledgement = next(responses)
    assert acknowledgement.frame_type == router_pb2.FRAME_TYPE_PING  # the exporter holds the value
    assert raw.call("sizes", value, 12).typed_result.map_value.entries[0].value.int_value == 12
    assert list(responses) == []  # the upload ends once a call took its value
    with refused(grpc.StatusCode.INVALID_ARGUMENT, "the exporter has not received, or that another call took"):
        raw.call("sizes", value, 12)


def test_a_call_naming_a_value_never_uploaded_is_refused(raw: Raw) -> None:
    with refused(grpc.StatusCode.INVALID_ARGUMENT, "upload it before the call"):
        raw.call("sizes", str(uuid.uuid4()), 12)


def test_a_reference_the_request_did_not_announce_is_refused(raw: Raw) -> None:
    value, responses = raw.upload(b"data")
    next(responses)
    with refused(grpc.StatusCode.INVALID_ARGUMENT, "holds a bulk value without announcing it"):
        raw.call("sizes", value, 4, announced=0)


def test_uploads_must_carry_what_they_announce(raw: Raw) -> None:
    with refused(grpc.StatusCode.INVALID_ARGUMENT, "the upload ended after 4 of the 10 bytes it announced"):
        list(raw.upload(b"data", size=10)[1])
    with refused(grpc.StatusCode.INVALID_ARGUMENT, "the upload carries more than the 2 bytes it announced"):
        list(raw.upload(b"data", size=2)[1])
    with refused(grpc.StatusCode.INVALID_ARGUMENT, "over the 2048 MiB one value may take"):
        list(raw.upload(b"", size=(2 << 30) + 1)[1])


def test_uploads_hold_a_bounded_number_of_bytes_until_their_client_leaves(raw: Raw) -> None:
    # Announced, not sent: each upload reserves its size until its stream ends.
    first, second = raw.announce(2 << 30), raw.announce(2 << 30)
    assert not first.done() and not second.done(), "both fit in the budget"
    with refused(grpc.StatusCode.RESOURCE_EXHAUSTED, "takes 4096 MiB at most: try again once those calls have run"):
        list(raw.announce(1))
    first.cancel()  # the client left: its reservation goes
    deadline = time.monotonic() + 10
    while (third := raw.announce(1)).done():
        assert time.monotonic() < deadline, "the reservation of a cancelled upload was kept"
        time.sleep(0.05)
    for call in (second, third):
        call.cancel()


def test_a_large_result_is_downloaded_once_within_its_time(raw: Raw) -> None:
    request = jumpstarter_pb2.DriverCallRequest(uuid=raw.driver, method="make")
    request.typed_args.args.add().int_value = LARGE
    request.typed_args.bulk_results = True
    response = raw.calls.DriverCall(request)
    assert response.bulk_values == 1
    value = response.typed_result.bulk_value.uuid
    frames = raw.download(value)
    assert b"".join(frame.payload for frame in frames) == large(1)
    assert frames[-1].frame_type == router_pb2.FRAME_TYPE_GOAWAY
    with refused(grpc.StatusCode.NOT_FOUND, "a result is downloaded once, within 0.3 s of its call"):
        raw.download(value)

    unclaimed = raw.calls.DriverCall(request).typed_result.bulk_value.uuid
    time.sleep(0.6)  # twice the time a result waits
    with refused(grpc.StatusCode.NOT_FOUND, f"no large result {unclaimed} waits here"):
        raw.download(unclaimed)


def test_a_client_that_does_not_ask_gets_its_result_in_the_response(raw: Raw) -> None:
    request = jumpstarter_pb2.DriverCallRequest(uuid=raw.driver, method="make")
    request.typed_args.args.add().int_value = LARGE
    response = raw.calls.DriverCall(request)
    assert response.bulk_values == 0 and response.typed_result.bytes_value == large(1)
