"""Driver logs reach the client through LogStream, every record to every consumer."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf import empty_pb2

from jumpstarter.client import DriverClient
from jumpstarter.common.utils import serve
from jumpstarter.driver import Driver, export
from jumpstarter.v1 import common_pb2, jumpstarter_pb2_grpc


@dataclass(kw_only=True)
class Chatty(Driver):
    @classmethod
    def client(cls) -> str:
        return "jumpstarter.client.DriverClient"

    @export
    def say(self, message: str, level: str = "INFO") -> None:
        self.logger.log(logging.getLevelName(level), "%s", message)

    @export
    async def say_async(self, message: str) -> None:
        self.logger.warning(message)

    @export
    def fail_loudly(self) -> None:
        try:
            raise RuntimeError("the relay is stuck")
        except RuntimeError:
            self.logger.exception("switching failed")

    @export
    def library_warning(self, message: str) -> None:
        logging.getLogger("some.library").warning(message)


class Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def wait_for(self, count: int, timeout: float = 5) -> list[logging.LogRecord]:
        deadline = time.monotonic() + timeout
        while len(self.records) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.records


@pytest.fixture
def collector() -> Iterator[Collector]:
    collector = Collector()
    remote = logging.getLogger("jumpstarter.remote")
    remote.addHandler(collector)
    remote.setLevel(logging.DEBUG)
    try:
        yield collector
    finally:
        remote.removeHandler(collector)
        remote.setLevel(logging.NOTSET)


@pytest.fixture
def client() -> Iterator[DriverClient]:
    with serve(Chatty(log_level="DEBUG")) as client:
        yield client


def test_driver_records_are_relayed_with_level_and_source(client: DriverClient, collector: Collector) -> None:
    with client.log_stream():
        client.call("say", "powering on")
        client.call("say", "details", "DEBUG")
        client.call("say_async", "voltage low")
        records = collector.wait_for(3)
    assert [(r.name, r.levelname, r.getMessage()) for r in records] == [
        ("jumpstarter.remote.driver.Chatty", "INFO", "powering on"),
        ("jumpstarter.remote.driver.Chatty", "DEBUG", "details"),
        ("jumpstarter.remote.driver.Chatty", "WARNING", "voltage low"),
    ]


def test_leaving_the_log_stream_delivers_every_record_emitted_before(
    client: DriverClient, collector: Collector
) -> None:
    for number in range(30):
        with client.log_stream():
            client.call("say", f"record {number}")
        # No waiting: the record was relayed before the block ended.
        assert collector.records[-1].getMessage() == f"record {number}"


def test_other_loggers_of_the_exporter_are_system_records(client: DriverClient, collector: Collector) -> None:
    with client.log_stream():
        client.call("library_warning", "deprecated option")
        records = collector.wait_for(1)
    assert [(r.name, r.getMessage()) for r in records] == [("jumpstarter.remote.system", "deprecated option")]


def test_tracebacks_are_included(client: DriverClient, collector: Collector) -> None:
    with client.log_stream():
        client.call("fail_loudly")
        (record,) = collector.wait_for(1)
    assert record.levelname == "ERROR"
    assert record.getMessage().startswith("switching failed\nTraceback")
    assert "RuntimeError: the relay is stuck" in record.getMessage()


def test_every_consumer_gets_every_record(client: DriverClient) -> None:
    stub = jumpstarter_pb2_grpc.ExporterServiceStub(client.connection.sync_channel)
    streams = [stub.LogStream(empty_pb2.Empty()) for _ in range(3)]
    try:
        for stream in streams:
            stream.initial_metadata()  # subscribed from here on
        for number in range(5):
            client.call("say", f"record {number}")
        for stream in streams:
            received = [next(stream) for _ in range(5)]
            assert [r.message for r in received] == [f"record {n}" for n in range(5)]
            assert {r.source for r in received} == {common_pb2.LOG_SOURCE_DRIVER}
            assert all(r.HasField("source") and r.severity == "INFO" for r in received)
    finally:
        for stream in streams:
            stream.cancel()


def test_records_before_a_consumer_opened_are_not_replayed(client: DriverClient, collector: Collector) -> None:
    client.call("say", "nobody listens")
    with client.log_stream():
        client.call("say", "now someone does")
        records = collector.wait_for(1)
        time.sleep(0.1)
    assert [r.getMessage() for r in records] == ["now someone does"]


def test_log_stream_ends_when_the_client_leaves(client: DriverClient) -> None:
    stub = jumpstarter_pb2_grpc.ExporterServiceStub(client.connection.sync_channel)
    stream = stub.LogStream(empty_pb2.Empty())
    stream.initial_metadata()
    stream.cancel()
    with pytest.raises(grpc.RpcError) as raised:
        next(stream)
    assert raised.value.code() == grpc.StatusCode.CANCELLED
    assert client.call("say", "still fine") is None
