"""@exportstream byte streams: echo, half-close both ways, failures, closing."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

import anyio
import pytest
from anyio import EndOfStream, create_memory_object_stream
from anyio.streams.stapled import StapledObjectStream

from jumpstarter.client import BlockingStream, DriverClient, DriverError, blocking, connection
from jumpstarter.common.utils import serve
from jumpstarter.driver import Driver, exportstream


@dataclass(kw_only=True)
class Streams(Driver):
    """An echo, a reader that answers once the client has finished, a failing device."""

    received: list[bytes] = field(default_factory=list)
    closed: threading.Event = field(default_factory=threading.Event)
    firehose_sent: int = 0

    @classmethod
    def client(cls) -> str:
        return "jumpstarter.client.DriverClient"

    @exportstream
    @asynccontextmanager
    async def connect(self) -> AsyncIterator[StapledObjectStream[bytes]]:
        send, receive = create_memory_object_stream[bytes](32)
        try:
            async with StapledObjectStream(send, receive) as stream:
                yield stream
        finally:
            self.closed.set()

    @exportstream
    async def summing(self) -> AsyncIterator[StapledObjectStream[bytes]]:
        """Reads until the client's end of stream, then answers with the byte count and ends."""
        to_driver_send, to_driver_receive = create_memory_object_stream[bytes](32)
        to_client_send, to_client_receive = create_memory_object_stream[bytes](32)

        async def answer() -> None:
            total = 0
            async for chunk in to_driver_receive:
                total += len(chunk)
            await to_client_send.send(str(total).encode())
            await to_client_send.aclose()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(answer)
            yield StapledObjectStream(to_driver_send, to_client_receive)

    @exportstream
    async def greeter(self) -> AsyncIterator[StapledObjectStream[bytes]]:
        """Sends a banner and ends its direction at once; keeps reading what the client sends."""
        to_driver_send, to_driver_receive = create_memory_object_stream[bytes](32)
        to_client_send, to_client_receive = create_memory_object_stream[bytes](32)
        await to_client_send.send(b"welcome")
        await to_client_send.aclose()

        async def collect() -> None:
            async for chunk in to_driver_receive:
                self.received.append(chunk)

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(collect)
            yield StapledObjectStream(to_driver_send, to_client_receive)

    @exportstream
    async def sink_that_never_reads(self) -> AsyncIterator[StapledObjectStream[bytes]]:
        send, receive = create_memory_object_stream[bytes](4)
        async with StapledObjectStream(send, receive) as stream:
            yield stream  # nothing ever receives what the client sends

    @exportstream
    async def firehose(self) -> AsyncIterator[StapledObjectStream[bytes]]:
        """Sends 64 KiB chunks as fast as the client takes them, counting what it sent."""
        to_client_send, to_client_receive = create_memory_object_stream[bytes](4)
        to_driver_send, _ = create_memory_object_stream[bytes](4)

        async def produce() -> None:
            while True:
                await to_client_send.send(b"f" * 65536)
                self.firehose_sent += 65536

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(produce)
            yield StapledObjectStream(to_driver_send, to_client_receive)
            tasks.cancel_scope.cancel()

    @exportstream
    async def broken(self) -> AsyncIterator[object]:
        class Failing(StapledObjectStream):
            async def receive(self) -> bytes:
                raise OSError("the device disappeared")

        send, receive = create_memory_object_stream[bytes](1)
        yield Failing(send, receive)

    @exportstream
    async def refusing(self) -> AsyncIterator[object]:
        raise ConnectionRefusedError("nothing listens on the board's port 22")
        yield  # pragma: no cover


@pytest.fixture
def driver() -> Streams:
    return Streams()


@pytest.fixture
def client(driver: Streams) -> Iterator[DriverClient]:
    with serve(driver) as client:
        yield client


def receive_all(stream: object) -> bytes:
    return b"".join(stream)  # type: ignore[arg-type]


@pytest.mark.parametrize("size", [1, 64 * 1024, 10 * 2**20])
def test_echo_with_half_close(client: DriverClient, size: int) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    with client.stream() as stream:
        sender = threading.Thread(target=lambda: (stream.send(data), stream.send_eof()))
        sender.start()
        assert receive_all(stream) == data
        sender.join()


def test_the_driver_answers_after_the_client_half_closes(client: DriverClient) -> None:
    with client.stream("summing") as stream:
        for _ in range(10):
            stream.send(b"x" * 1000)
        stream.send_eof()
        assert receive_all(stream) == b"10000"


def test_the_driver_half_closes_and_still_receives(client: DriverClient, driver: Streams) -> None:
    with client.stream("greeter") as stream:
        assert receive_all(stream) == b"welcome"
        with pytest.raises(EndOfStream):
            stream.receive()
        stream.send(b"still ")
        stream.send(b"listening")
        stream.send_eof()
    # Leaving the block delivered everything that was sent.
    assert b"".join(driver.received) == b"still listening"


def test_data_sent_before_closing_is_delivered(client: DriverClient, driver: Streams) -> None:
    with client.stream("greeter") as stream:
        stream.send(b"x" * 3_000_000)
    assert sum(len(chunk) for chunk in driver.received) == 3_000_000


def test_a_driver_that_does_not_read_holds_back_the_sender(
    client: DriverClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    for module in (blocking, connection):
        monkeypatch.setattr(module, "STREAM_LINGER_SECONDS", 0.5)
    accepted = 0

    def send_forever(stream: BlockingStream) -> None:
        nonlocal accepted
        with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            while accepted < 1 << 30:
                stream.send(b"s" * 65536)
                accepted += 65536

    with client.stream("sink_that_never_reads") as stream:
        sender = threading.Thread(target=send_forever, args=(stream,))
        sender.start()
        time.sleep(1)
        # Buffered: the client's send buffer, the transport's windows and the driver's queue.
        assert accepted < 64 * 2**20, f"{accepted >> 20} MiB accepted by a driver that reads nothing"
        assert sender.is_alive(), "the sender should be blocked"
    # Leaving gave up on what the driver would never take, after the linger time.
    sender.join(10)
    assert not sender.is_alive()


def test_a_client_that_does_not_read_holds_back_the_driver(client: DriverClient, driver: Streams) -> None:
    with client.stream("firehose") as stream:
        assert len(stream.receive()) > 0
        time.sleep(1)
        assert driver.firehose_sent < 64 * 2**20, f"the driver ran ahead by {driver.firehose_sent >> 20} MiB"


def test_a_failing_device_ends_the_stream_with_its_error(client: DriverClient) -> None:
    # Depending on timing the failure surfaces when the stream opens or at the next receive.
    with (
        pytest.raises((anyio.BrokenResourceError, DriverError), match="the device disappeared"),
        client.stream("broken") as stream,
    ):
        stream.receive()


def test_a_stream_that_cannot_open_raises_when_opened(client: DriverClient) -> None:
    from jumpstarter.client import DriverConnectionError

    with (
        pytest.raises(DriverConnectionError, match="nothing listens on the board's port 22"),
        client.stream("refusing"),
    ):
        pass
    with client.stream() as stream:  # the client stays usable
        stream.send(b"ok")
        assert stream.receive() == b"ok"


def test_leaving_early_closes_the_driver_stream(client: DriverClient, driver: Streams) -> None:
    with client.stream() as stream:
        stream.send(b"unread")
    assert driver.closed.wait(5)


def test_open_stream_and_close(client: DriverClient, driver: Streams) -> None:
    stream = client.open_stream()
    stream.send(b"ping")
    assert stream.receive() == b"ping"
    client.close()
    assert driver.closed.wait(5)


def test_receive_honours_max_bytes(client: DriverClient) -> None:
    with client.stream() as stream:
        stream.send(b"abcdef")
        assert stream.receive(2) == b"ab"
        assert stream.receive(10) == b"cdef"


def test_several_streams_at_once_are_independent(client: DriverClient) -> None:
    with client.stream() as first, client.stream() as second:
        first.send(b"one")
        second.send(b"two")
        assert second.receive() == b"two"
        assert first.receive() == b"one"


def test_stream_async_twin(client: DriverClient) -> None:
    async def echo() -> bytes:
        async with client.stream_async() as stream:
            await stream.send(b"async")
            await stream.send_eof()
            chunks = [chunk async for chunk in stream]
        return b"".join(chunks)

    assert client.portal.call(echo) == b"async"


def test_serve_exit_with_an_open_stream_ends_it(driver: Streams) -> None:
    with serve(driver) as client:
        stream = client.open_stream()
        stream.send(b"x")
    assert driver.closed.wait(5)
