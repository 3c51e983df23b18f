"""The exporter against strangers and greedy clients: real gRPC over loopback TCP and Unix sockets.

The token check refuses without reading; a connection's handshake time, the connections of
one peer and the log streams of one connection are bounded; refusals stay in the exporter's
log, a line a minute; failed calls leave nothing for the cyclic collector; one client's
blocked calls do not hold up another's, and a call given up before it started never runs.
"""

from __future__ import annotations

import gc
import logging
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import anyio
import grpc
import pytest
from anyio.from_thread import start_blocking_portal
from google.protobuf import empty_pb2

from jumpstarter.client import connect
from jumpstarter.common.exceptions import DriverInvalidArgument
from jumpstarter.common.wire import decode_result, encode_call
from jumpstarter.driver import Driver, export
from jumpstarter.exporter import SingleSession, TcpListener, listen
from jumpstarter.exporter.auth import TlsIdentity
from jumpstarter.exporter.gate import ConnectionLimits
from jumpstarter.exporter.guard import REFUSED, TokenAuthentication
from jumpstarter.testing import serve, serve_async
from jumpstarter.v1 import jumpstarter_pb2, jumpstarter_pb2_grpc

TOKEN = "the-token"
IDENTITY = TlsIdentity.self_signed(["127.0.0.1"])


@dataclass(kw_only=True)
class Bench(Driver):
    """Blocks when asked to, counts what ran."""

    released: threading.Event = field(default_factory=threading.Event)
    blocked: int = 0
    marks: list[str] = field(default_factory=list)

    @classmethod
    def client(cls) -> str:
        return "jumpstarter.client.DriverClient"

    @export
    def block(self) -> None:
        self.blocked += 1
        self.released.wait(30)

    @export
    def ping(self) -> str:
        return "pong"

    @export
    def mark(self, name: str) -> None:
        self.marks.append(name)

    @export
    def size(self, values):  # type: ignore[no-untyped-def]  # unannotated: nothing validates the values
        return len(values)

    @export
    def fail(self, data: bytes) -> None:
        raise ValueError(f"refused {len(data)} bytes")

    @export
    def fail_streaming(self, data: bytes) -> Iterator[int]:
        yield len(data)
        raise ValueError("the stream broke")

    @export
    def say(self, message: str) -> None:
        self.logger.warning("%s", message)


@contextmanager
def exporter_on_tcp(root: Driver, **listener: Any) -> Iterator[str]:
    """Serve `root` on 127.0.0.1 with TLS and TOKEN (unless told otherwise), from a background loop."""
    settings: dict[str, Any] = {"tls": IDENTITY, "token": TOKEN, **listener}
    with start_blocking_portal() as portal:
        serving = listen(SingleSession(root), tcp=TcpListener("127.0.0.1", 0, **settings))
        with portal.wrap_async_context_manager(serving) as where:
            assert where.tcp_address is not None
            yield where.tcp_address


def tls_client(address: str, **options: Any) -> Any:
    return connect(address, tls_ca=IDENTITY.certificate, token=TOKEN, **options)


def raw_channel(address: str) -> grpc.Channel:
    return grpc.secure_channel(address, grpc.ssl_channel_credentials(IDENTITY.certificate))


# -- the token ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_call_without_the_token_is_refused_by_a_handler_that_reads_nothing() -> None:
    guard = TokenAuthentication(TOKEN)
    continued = []

    async def continuation(details: Any) -> Any:
        continued.append(details)
        return grpc.unary_unary_rpc_method_handler(lambda request, context: None, jumpstarter_pb2.DriverCallRequest)

    details = SimpleNamespace(
        method="/jumpstarter.v1.ExporterService/DriverCall",
        invocation_metadata=(("authorization", "Bearer not-the-token"),),
    )
    handler = await guard.intercept_service(continuation, details)  # type: ignore[arg-type]
    # gRPC reads a request before calling a unary handler, and parses it with the deserializer:
    # the refusing handler is a streaming one, without a deserializer, that never reads.
    assert handler.request_streaming and handler.request_deserializer is None
    assert continued == []
    details.invocation_metadata = (("authorization", f"Bearer {TOKEN}"),)
    assert (await guard.intercept_service(continuation, details)).request_deserializer is not None  # type: ignore[arg-type]
    guard.close()


def test_refused_calls_stay_in_the_exporters_log_a_line_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    relayed: list[logging.LogRecord] = []

    class Relayed(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            relayed.append(record)

    remote = logging.getLogger("jumpstarter.remote")
    handler = Relayed()
    remote.addHandler(handler)
    caplog.set_level(logging.WARNING, logger="jumpstarter.guard")
    try:
        with exporter_on_tcp(Bench()) as address:
            with tls_client(address) as client:  # attached: it would receive what the exporter relays
                with raw_channel(address) as channel:
                    stub = jumpstarter_pb2_grpc.ExporterServiceStub(channel)
                    for _ in range(200):
                        with pytest.raises(grpc.RpcError) as refused:
                            stub.GetReport(empty_pb2.Empty(), metadata=(("authorization", "Bearer wrong"),))
                        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
                        assert refused.value.details() == REFUSED  # type: ignore[attr-defined]
                client.call("say", "a driver's record")
            guard_lines = [record.getMessage() for record in caplog.records if record.name == "jumpstarter.guard"]
            assert len(guard_lines) == 1 and guard_lines[0].startswith("refused a call of ")
            assert "from ipv4:127.0.0.1:" in guard_lines[0], "the log names the peer, not the gate's socket"
        # The rest are counted, and said when the listener closes (or a minute later).
        guard_lines = [record.getMessage() for record in caplog.records if record.name == "jumpstarter.guard"]
        assert len(guard_lines) == 2 and guard_lines[1].startswith("199 more refusals in the last 60 s")
    finally:
        remote.removeHandler(handler)
    messages = [record.getMessage() for record in relayed]
    assert "a driver's record" in messages
    assert not [message for message in messages if "refused" in message], "refusals were sent to the client"


# -- connections ------------------------------------------------------------------------------


def test_a_connection_that_never_completes_its_handshake_is_closed() -> None:
    with exporter_on_tcp(Bench(), handshake_seconds=0.5) as address:
        host, port = address.rsplit(":", 1)
        with socket.create_connection((host, int(port))) as idle:
            idle.settimeout(10)
            began = time.monotonic()
            assert idle.recv(1) == b""  # closed by the exporter, not by the timeout
            assert time.monotonic() - began < 5


def _connect_from(address: str, source: str) -> socket.socket:
    host, port = address.rsplit(":", 1)
    connection = socket.socket()
    connection.bind((source, 0))
    connection.connect((host, int(port)))
    return connection


def _closed(connection: socket.socket) -> bool:
    connection.setblocking(False)
    try:
        return connection.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


def test_one_peer_holds_a_bounded_number_of_connections_and_others_still_get_in() -> None:
    with exporter_on_tcp(Bench(), limits=ConnectionLimits(per_peer=4)) as address, ExitStack() as stack:
        greedy = [stack.enter_context(_connect_from(address, "127.0.0.2")) for _ in range(10)]
        time.sleep(0.3)
        assert [_closed(connection) for connection in greedy] == [False] * 4 + [True] * 6
        with tls_client(address) as client:  # from 127.0.0.1: another peer
            assert client.call("ping") == "pong"
        greedy[0].close()
        time.sleep(0.2)
        again = stack.enter_context(_connect_from(address, "127.0.0.2"))
        time.sleep(0.3)
        assert not _closed(again), "a freed place is taken again"


def test_a_connection_holds_a_bounded_number_of_log_streams() -> None:
    metadata = (("authorization", f"Bearer {TOKEN}"),)
    with exporter_on_tcp(Bench()) as address, raw_channel(address) as channel, raw_channel(address) as other:
        stub = jumpstarter_pb2_grpc.ExporterServiceStub(channel)
        streams = [stub.LogStream(empty_pb2.Empty(), metadata=metadata) for _ in range(16)]
        try:
            for stream in streams:
                stream.initial_metadata()  # open, and receiving every record
            refused = stub.LogStream(empty_pb2.Empty(), metadata=metadata)
            with pytest.raises(grpc.RpcError) as error:
                next(refused)
            assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
            assert "holds 16 log streams already" in error.value.details()  # type: ignore[attr-defined]
            # Another connection is not held back by this one.
            another = jumpstarter_pb2_grpc.ExporterServiceStub(other).LogStream(empty_pb2.Empty(), metadata=metadata)
            another.initial_metadata()
            another.cancel()
        finally:
            for stream in streams:
                stream.cancel()


# -- failed calls ------------------------------------------------------------------------------


def test_failed_calls_leave_nothing_for_the_cyclic_collector() -> None:
    data = bytes(2 << 20)
    with serve(Bench()) as client:
        client.call("ping")
        gc.collect()
        gc.disable()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(10):
                with pytest.raises(DriverInvalidArgument, match="refused 2097152 bytes"):
                    client.call("fail", data)
                with pytest.raises(DriverInvalidArgument, match="the stream broke"):
                    list(client.streamingcall("fail_streaming", data))
            kept = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
            gc.enable()
    # Twenty failed calls each received 2 MiB: none of them may stay reachable.
    assert kept < 8 << 20, f"{kept >> 20} MiB kept after the calls failed"


def test_a_call_with_too_many_values_is_refused_before_it_is_parsed() -> None:
    with serve(Bench()) as client:
        with pytest.raises(DriverInvalidArgument, match=r"more than 1,000,000 values, the most a call may carry"):
            client.call("mark", [None] * 1_000_001)
        assert client.call("ping") == "pong"


def test_a_call_of_many_small_values_is_parsed_while_other_calls_go_on() -> None:
    # Half a million values (2 MB): fewer than a call may carry, and decoded one by one, long
    # enough that the exporter parses them in a thread, not on the loop that serves other calls.
    values = [None] * 500_000
    with serve(Bench()) as client, ThreadPoolExecutor(1) as pool:
        large = pool.submit(client.call, "size", values)
        gaps = []
        start = last = time.monotonic()
        while not large.done():
            assert client.call("ping") == "pong"
            now = time.monotonic()
            gaps.append(now - last)
            last = now
        took = time.monotonic() - start
        assert large.result() == len(values)
    # Parsed on the loop, a ping would wait the whole parse: most of the call (90% when tried).
    assert max(gaps) < took / 5, f"a ping waited {max(gaps):.3f} s of the large call's {took:.3f} s"


# -- worker threads, shared fairly --------------------------------------------------------------


def test_blocked_calls_of_one_client_do_not_hold_up_another() -> None:
    bench = Bench()
    with (
        exporter_on_tcp(bench, tls=None, token=None) as address,
        connect(address, insecure=True) as greedy,
        ThreadPoolExecutor(80) as pool,
    ):
        try:
            blocked = [pool.submit(greedy.call, "block") for _ in range(80)]
            deadline = time.monotonic() + 15
            while bench.blocked < 64:  # as many as one client may run at once
                assert time.monotonic() < deadline, f"only {bench.blocked} calls started"
                time.sleep(0.01)
            # Another client, on a connection of its own (channels of one process share connections).
            request = encode_call(jumpstarter_pb2.DriverCallRequest, str(greedy.uuid), "ping", (), {}, typed=True)
            with grpc.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
                stub = jumpstarter_pb2_grpc.ExporterServiceStub(channel)
                response = stub.DriverCall(jumpstarter_pb2.DriverCallRequest.FromString(request), timeout=5)
            assert decode_result(response) == "pong"
            time.sleep(0.2)
            assert bench.blocked == 64, "the greedy client's other calls wait for its own threads"
        finally:
            bench.released.set()
        for call in blocked:
            call.result(timeout=15)
        assert bench.blocked == 80


@pytest.mark.anyio
async def test_a_call_given_up_before_it_started_never_runs() -> None:
    bench = Bench()
    async with serve_async(bench) as client:
        async with anyio.create_task_group() as tasks:
            for _ in range(64):  # every thread this client may use
                tasks.start_soon(client.call_async, "block")
            with anyio.fail_after(10):
                while bench.blocked < 64:  # noqa: ASYNC110 - counted by the driver's worker threads
                    await anyio.sleep(0.01)
            with anyio.move_on_after(0.3):
                await client.call_async("mark", "given up")
            await anyio.sleep(0.5)  # for the cancellation to reach the exporter
            bench.released.set()
        await client.call_async("mark", "later")
    assert bench.marks == ["later"]
