"""What a client sees when a call fails, and that only exported methods can run."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
import pytest

from jumpstarter.client import (
    DriverClient,
    DriverConnectionError,
    DriverError,
    DriverInvalidArgument,
    DriverMethodNotImplemented,
    DriverTimeout,
    ExporterNotReady,
)
from jumpstarter.common.utils import serve
from jumpstarter.driver import Driver, export

ERRORS = {
    "value": ValueError("voltage out of range"),
    "not_implemented": NotImplementedError("this relay cannot measure"),
    "timeout": TimeoutError("no answer from the board"),
    "connection": ConnectionResetError("serial port went away"),
    "os": FileNotFoundError(2, "No such file or directory"),
    "runtime": RuntimeError("relay stuck"),
    "not_ready": ExporterNotReady("hold on"),
    "empty": KeyError(),
}


@dataclass(kw_only=True)
class Faulty(Driver):
    ran: list[str] = field(default_factory=list)

    @classmethod
    def client(cls) -> str:
        return "jumpstarter.client.DriverClient"

    @export
    def fail(self, kind: str) -> None:
        raise ERRORS[kind]

    @export
    async def fail_async(self, kind: str) -> None:
        raise ERRORS[kind]

    @export
    def fail_streaming(self, kind: str, after: int):
        yield from range(after)
        raise ERRORS[kind]

    @export
    def ok(self) -> str:
        return "ok"

    @export
    def items(self):
        yield 1

    def helper(self) -> None:
        self.ran.append("helper")

    def _private(self) -> None:
        self.ran.append("_private")

    @property
    def state(self) -> str:
        self.ran.append("state")
        return "on"


@pytest.fixture
def driver() -> Faulty:
    return Faulty()


@pytest.fixture
def client(driver: Faulty) -> Iterator[DriverClient]:
    with serve(driver) as client:
        yield client


@pytest.mark.parametrize(
    ("kind", "error_class", "builtin", "code"),
    [
        ("value", DriverInvalidArgument, ValueError, "INVALID_ARGUMENT"),
        ("not_implemented", DriverMethodNotImplemented, NotImplementedError, "UNIMPLEMENTED"),
        ("timeout", DriverTimeout, TimeoutError, "DEADLINE_EXCEEDED"),
        ("connection", DriverConnectionError, ConnectionError, "UNAVAILABLE"),
        ("os", DriverError, DriverError, "INTERNAL"),
        ("runtime", DriverError, DriverError, "UNKNOWN"),
        ("not_ready", ExporterNotReady, DriverError, "FAILED_PRECONDITION"),
    ],
)
@pytest.mark.parametrize("method", ["fail", "fail_async"])
def test_driver_exceptions_map_to_client_exceptions(
    client: DriverClient, method: str, kind: str, error_class: type, builtin: type, code: str
) -> None:
    with pytest.raises(error_class) as raised:
        client.call(method, kind)
    assert isinstance(raised.value, builtin)
    assert str(raised.value) == str(ERRORS[kind])
    note = f"in a call of {method!r} where the driver raised {type(ERRORS[kind]).__name__} (gRPC status {code})"
    assert raised.value.__notes__ == [note]
    assert client.call("ok") == "ok"  # the client stays usable


def test_an_exception_without_a_message_is_named(client: DriverClient) -> None:
    with pytest.raises(DriverError) as raised:
        client.call("fail", "empty")
    assert str(raised.value) == "KeyError"


@pytest.mark.parametrize(("kind", "error_class"), [("value", DriverInvalidArgument), ("runtime", DriverError)])
def test_streaming_errors_come_after_the_items_before_them(client: DriverClient, kind: str, error_class: type) -> None:
    received = []
    with pytest.raises(error_class, match=str(ERRORS[kind])):
        for item in client.streamingcall("fail_streaming", kind, 3):
            received.append(item)
    assert received == [0, 1, 2]
    assert list(client.streamingcall("items")) == [1]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("helper", "Faulty.helper is not exported; only methods marked with @export can be called"),
        ("_private", "Faulty._private is private; only methods marked with @export can be called"),
        ("__init__", "Faulty.__init__ is private"),
        ("__class__", "Faulty.__class__ is private"),
        ("state", "Faulty.state is not exported"),
        ("client", "Faulty.client is not exported"),
        ("close", "Faulty.close is not exported"),
        ("missing", "Faulty has no exported method 'missing'"),
        ("oks", "Faulty has no exported method 'oks' (did you mean 'ok'?)"),
        ("", "Faulty has no exported method ''"),
    ],
)
def test_only_exported_methods_run(client: DriverClient, driver: Faulty, name: str, message: str) -> None:
    with pytest.raises(DriverMethodNotImplemented, match=re.escape(message)):
        client.call(name)
    with pytest.raises(DriverMethodNotImplemented):
        list(client.streamingcall(name))
    assert driver.ran == []


def test_wrong_call_kind_says_which_to_use(client: DriverClient) -> None:
    with pytest.raises(DriverMethodNotImplemented, match=r"Faulty.items is a streaming call: use streamingcall\(\)"):
        client.call("items")
    with pytest.raises(DriverMethodNotImplemented, match=r"Faulty.ok is a unary call: use call\(\), not streamingcall"):
        list(client.streamingcall("ok"))
    with (
        pytest.raises(DriverMethodNotImplemented, match=r"Faulty.ok is a unary call: use call\(\), not stream\(\)"),
        client.stream("ok"),
    ):
        pass


def test_unknown_driver_uuid(client: DriverClient) -> None:
    from jumpstarter.v1 import jumpstarter_pb2, jumpstarter_pb2_grpc

    stub = jumpstarter_pb2_grpc.ExporterServiceStub(client.connection.sync_channel)
    for uuid in ("00000000-0000-0000-0000-000000000000", "not-a-uuid"):
        with pytest.raises(grpc.RpcError) as raised:
            stub.DriverCall(jumpstarter_pb2.DriverCallRequest(uuid=uuid, method="ok"))
        assert raised.value.code() == grpc.StatusCode.NOT_FOUND
        assert "reconnect to get the current driver tree" in raised.value.details()


def test_the_exporter_logs_unexpected_driver_errors(client: DriverClient, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(DriverError):
        client.call("fail", "runtime")
    record = next(r for r in caplog.records if r.name == "jumpstarter.exporter.session")
    assert record.getMessage() == "Faulty.fail() raised RuntimeError: relay stuck"
    assert record.exc_info is not None
