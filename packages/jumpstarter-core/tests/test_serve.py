"""serve(): the session's lifecycle, its socket, teardown, status, and what importing costs."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

import anyio
import grpc
import pytest
from anyio import create_memory_object_stream
from anyio.streams.stapled import StapledObjectStream

from jumpstarter.client import DriverConnectionError, DriverError, connect
from jumpstarter.common.utils import serve
from jumpstarter.driver import Composite, Driver, export, exportstream
from jumpstarter.testing import serve_socket
from jumpstarter.v1 import common_pb2, jumpstarter_pb2, jumpstarter_pb2_grpc


@dataclass(kw_only=True)
class Board(Driver):
    events: list[str] = field(default_factory=list)
    finished: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def client(cls) -> str:
        return "jumpstarter.client.DriverClient"

    def reset(self) -> None:
        self.events.append(f"reset in {threading.current_thread().name}")

    def close(self) -> None:
        self.events.append("close")

    @export
    def ping(self) -> str:
        return "pong"

    @export
    def slow(self) -> None:
        time.sleep(0.5)
        self.events.append("slow finished")
        self.finished.set()

    @exportstream
    @asynccontextmanager
    async def connect(self) -> AsyncIterator[StapledObjectStream[bytes]]:
        send, receive = create_memory_object_stream[bytes](1)
        async with StapledObjectStream(send, receive) as stream:
            yield stream


@dataclass(kw_only=True)
class Fragile(Board):
    def close(self) -> None:
        self.events.append("close")
        raise RuntimeError("could not release the relay")


def test_drivers_are_reset_on_start_and_closed_on_exit() -> None:
    board = Board()
    with serve(board) as client:
        assert board.events == ["reset in jumpstarter-driver_0"]
        client.call("ping")
    assert board.events[-1] == "close"


def test_a_failing_close_does_not_keep_siblings_open(caplog: pytest.LogCaptureFixture) -> None:
    fragile, sibling = Fragile(), Board()
    with serve(Composite(children={"fragile": fragile, "sibling": sibling})):
        pass
    assert fragile.events[-1] == "close" and sibling.events[-1] == "close"
    assert "closing Fragile driver 'fragile' failed" in caplog.text


def test_every_driver_is_reset_parents_first_and_closed_children_first_once() -> None:
    order: list[str] = []

    @dataclass(kw_only=True)
    class Recorder(Board):
        name: str

        def reset(self) -> None:
            order.append(f"reset {self.name}")

        def close(self) -> None:
            order.append(f"close {self.name}")

    shared = Recorder(name="shared")
    root = Recorder(name="root", children={"a": Recorder(name="a", children={"s": shared}), "alias": shared})
    with serve(root):
        assert order == ["reset root", "reset a", "reset shared"]
    assert order[3:] == ["close shared", "close a", "close root"]


def test_the_socket_is_private_and_removed() -> None:
    with serve(Board()) as client:
        path = client.connection.address
        directory = os.path.dirname(path)
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    assert not os.path.exists(directory)


def test_a_call_in_progress_finishes_before_the_drivers_close() -> None:
    board = Board()
    with serve(board) as client:

        def call_slow() -> None:
            # The call itself may be cut short by the client leaving; the driver code is not.
            with suppress(DriverError):
                client.call("slow")

        caller = threading.Thread(target=call_slow)
        caller.start()
        time.sleep(0.1)
    # serve() waited for the driver code before closing the driver.
    assert board.events[-2:] == ["slow finished", "close"]
    caller.join()


def test_a_client_left_with_an_open_stream_cannot_hold_the_exporter() -> None:
    with serve(Board()) as client:
        stream = client.open_stream()
        stream.send(b"x")
    with pytest.raises(Exception):  # noqa: B017 - the exact error depends on timing; it must not hang
        stream.receive()


def test_a_client_connected_from_blocking_code_starts_its_event_loop_only_when_needed() -> None:
    with serve_socket(Board()) as path:
        threads = set(threading.enumerate())
        with connect(path, attach=False) as client:
            assert client.call("ping") == "pong"
            assert set(threading.enumerate()) == threads  # calls need no event loop
            with client.stream() as stream:  # a byte stream does: it starts one, in a thread
                stream.send(b"ping")
                assert stream.receive() == b"ping"
            assert len(set(threading.enumerate()) - threads) == 1
            assert client.portal.call(client.call_async, "ping") == "pong"  # the same loop
            assert len(set(threading.enumerate()) - threads) == 1
        assert set(threading.enumerate()) == threads  # stopped with the connection
        with pytest.raises(RuntimeError, match="not running"):
            client.portal.call(client.call_async, "ping")
        with connect(path, attach=False) as caller:
            assert caller.call("ping") == "pong"
        with pytest.raises(RuntimeError, match="the client's connection is closed"):
            caller.portal  # noqa: B018 - a closed client starts no loop
        assert set(threading.enumerate()) == threads


def test_calls_after_the_exporter_went_away_fail_clearly() -> None:
    with serve(Board()) as client:
        pass
    with pytest.raises((DriverConnectionError, DriverError, ValueError)):
        client.call("ping")


def test_status_end_session_and_reset() -> None:
    with serve(Board()) as client:
        stub = jumpstarter_pb2_grpc.ExporterServiceStub(client.connection.sync_channel)
        status = stub.GetStatus(jumpstarter_pb2.GetStatusRequest())
        assert status.status == common_pb2.EXPORTER_STATUS_LEASE_READY
        assert status.HasField("message") and status.status_version == 0
        assert not status.HasField("previous_status")
        ended = stub.EndSession(jumpstarter_pb2.EndSessionRequest())
        assert ended.success is False and ended.message
        with pytest.raises(grpc.RpcError) as raised:
            stub.Reset(jumpstarter_pb2.ResetRequest())
        assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_status_updates_count_versions() -> None:
    from jumpstarter.exporter import SingleSession, listen

    provider = SingleSession(Board())
    provider.status.update(common_pb2.EXPORTER_STATUS_AVAILABLE, "idle")
    provider.status.update(common_pb2.EXPORTER_STATUS_LEASE_READY)

    async def status() -> jumpstarter_pb2.GetStatusResponse:
        async with (
            listen(provider, private_unix=True) as listening,
            grpc.aio.insecure_channel(f"unix://{listening.unix_path}") as channel,
        ):
            return await jumpstarter_pb2_grpc.ExporterServiceStub(channel).GetStatus(jumpstarter_pb2.GetStatusRequest())

    response = anyio.run(status)
    assert response.status_version == 2
    assert response.previous_status == common_pb2.EXPORTER_STATUS_AVAILABLE
    assert response.message == ""


def test_a_single_session_serves_calls_only_while_entered() -> None:
    from jumpstarter.exporter import SingleSession

    board = Board()
    provider = SingleSession(board)

    async def main() -> list[str]:
        with pytest.raises(RuntimeError, match="only while it is entered"):
            provider.session()
        async with provider:
            for _ in range(2):  # the session is held for one call, then for the next
                async with provider.session() as session:
                    assert await session.call(str(board.uuid), "ping", [], {}) == "pong"
        with pytest.raises(RuntimeError, match="only while it is entered"):
            provider.session()
        return board.events

    events = anyio.run(main)
    assert events[-1] == "close"


def test_repeated_serving_leaks_no_file_descriptors() -> None:
    def open_descriptors() -> int:
        return len(os.listdir("/proc/self/fd"))

    with serve(Board()) as client:  # warm up: gRPC keeps a few process-wide descriptors
        client.call("ping")
    before = open_descriptors()
    for _ in range(20):
        with serve(Board()) as client:
            client.call("ping")
            with client.stream() as stream:
                stream.send(b"x")
    assert open_descriptors() <= before + 2


def test_importing_the_driver_api_is_light() -> None:
    code = (
        "import sys, json, jumpstarter.driver;"
        "print(json.dumps(sorted(m for m in ('grpc', 'google.protobuf', 'pydantic') if m in sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(result.stdout) == []
