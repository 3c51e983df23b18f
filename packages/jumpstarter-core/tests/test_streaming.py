"""Streaming calls: items in order, prompt cancellation, bounded memory."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import anyio
import pytest

from jumpstarter.client import DriverClient
from jumpstarter.common.utils import serve
from jumpstarter.driver import Driver, export
from jumpstarter.exporter._dispatch import STREAMING_BACKLOG_BYTES


@dataclass(kw_only=True)
class Counter(Driver):
    closed: threading.Event = field(default_factory=threading.Event)
    produced: int = 0
    producer_threads: set[str] = field(default_factory=set)

    @classmethod
    def client(cls) -> str:
        return "jumpstarter.client.DriverClient"

    @export
    def count(self, n: int) -> Iterator[int]:
        yield from range(n)

    @export
    async def count_async(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    @export
    def forever(self, pause: float = 0.0, size: int = 0) -> Iterator[int | bytes]:
        i = 0
        try:
            while True:
                self.producer_threads.add(threading.current_thread().name)
                self.produced = i
                yield b"x" * size if size else i
                i += 1
                time.sleep(pause)
        finally:
            self.closed.set()

    @export
    async def forever_async(self, pause: float = 0.0, size: int = 0) -> AsyncIterator[int | bytes]:
        i = 0
        try:
            while True:
                self.produced = i
                yield b"x" * size if size else i
                i += 1
                await anyio.sleep(pause)
        finally:
            self.closed.set()

    @export
    async def blocked_async(self) -> AsyncIterator[int]:
        try:
            yield 0
            await anyio.sleep_forever()
        finally:
            self.closed.set()

    @export
    def big(self, count: int, size: int) -> Iterator[bytes]:
        for i in range(count):
            yield bytes([i % 256]) * size

    @export
    def kinds(self) -> Iterator[object]:
        yield from (1, b"\x00", None, {"k": [1.5]})


@pytest.fixture
def driver() -> Counter:
    return Counter()


@pytest.fixture
def client(driver: Counter) -> Iterator[DriverClient]:
    with serve(driver) as client:
        yield client


@pytest.mark.parametrize("method", ["count", "count_async"])
def test_every_item_in_order(client: DriverClient, method: str) -> None:
    assert list(client.streamingcall(method, 5000)) == list(range(5000))
    assert list(client.streamingcall(method, 0)) == []


def test_item_types_are_kept(client: DriverClient) -> None:
    assert list(client.streamingcall("kinds")) == [1, b"\x00", None, {"k": [1.5]}]


def test_sync_generators_run_in_worker_threads(client: DriverClient, driver: Counter) -> None:
    for item in client.streamingcall("forever"):
        if item == 3:
            break
    assert driver.closed.wait(5)
    assert all(name.startswith("jumpstarter-driver") for name in driver.producer_threads)


@pytest.mark.parametrize("method", ["forever", "forever_async"])
def test_breaking_out_closes_the_generator(client: DriverClient, driver: Counter, method: str) -> None:
    for item in client.streamingcall(method, 0.001):
        if item == 3:
            break
    assert driver.closed.wait(5), "the driver's generator was not closed"


@pytest.mark.parametrize("method", ["forever", "forever_async"])
def test_an_exception_in_the_loop_closes_the_generator(client: DriverClient, driver: Counter, method: str) -> None:
    with pytest.raises(ZeroDivisionError):
        for item in client.streamingcall(method, 0.001):
            if item == 2:
                raise ZeroDivisionError
    assert driver.closed.wait(5)


def test_dropping_the_generator_closes_the_driver_generator(client: DriverClient, driver: Counter) -> None:
    items = client.streamingcall("forever_async", 0.001)
    assert next(items) == 0
    del items
    gc.collect()
    assert driver.closed.wait(5)


def test_a_generator_waiting_on_hardware_is_cancelled_at_its_await(client: DriverClient, driver: Counter) -> None:
    items = client.streamingcall("blocked_async")
    assert next(items) == 0
    items.close()
    assert driver.closed.wait(5)


@pytest.mark.parametrize("method", ["forever", "forever_async"])
def test_a_slow_consumer_bounds_how_far_the_generator_runs_ahead(
    client: DriverClient, driver: Counter, method: str
) -> None:
    items = client.streamingcall(method, 0, 16 * 1024)
    assert len(next(items)) == 16 * 1024
    time.sleep(1)  # the generator could produce gigabytes meanwhile
    # In flight: the exporter's backlog, one batch being sent and the transport's buffers.
    ahead = driver.produced * 16 * 1024
    print(f"ran ahead by {ahead >> 20} MiB")
    assert ahead < 8 * STREAMING_BACKLOG_BYTES
    assert [len(next(items)) for _ in range(10)] == [16 * 1024] * 10
    items.close()
    assert driver.closed.wait(5)


def test_large_items_are_split_across_messages(client: DriverClient) -> None:
    # 300 items of 100 KiB: far more than one gRPC message should carry.
    items = list(client.streamingcall("big", 300, 100 * 1024))
    assert len(items) == 300
    assert all(item == bytes([i % 256]) * 100 * 1024 for i, item in enumerate(items))


def test_streaming_async_twin(client: DriverClient) -> None:
    async def collect() -> list[int]:
        return [item async for item in client.streamingcall_async("count", 10)]

    assert client.portal.call(collect) == list(range(10))


def test_a_call_made_while_streaming_runs_concurrently(client: DriverClient) -> None:
    items = client.streamingcall("forever", 0.001)
    assert next(items) == 0
    assert list(client.streamingcall("count", 3)) == [0, 1, 2]
    items.close()
