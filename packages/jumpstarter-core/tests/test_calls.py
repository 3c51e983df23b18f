"""Driver calls through serve(): values, arguments, sync and async code, threads."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from pydantic import BaseModel

from jumpstarter.client import DriverClient, DriverInvalidArgument
from jumpstarter.common.utils import serve, serve_async
from jumpstarter.driver import Driver, export


class Limits(BaseModel):
    voltage: float
    current: int


@dataclass
class Window:
    start: int
    end: int


@dataclass(kw_only=True)
class Calls(Driver):
    prefix: str = ">"

    @classmethod
    def client(cls) -> str:
        return "jumpstarter.client.DriverClient"

    @export
    def echo(self, value):
        return value

    @export
    async def echo_async(self, value):
        await anyio.lowlevel.checkpoint()
        return value

    @export
    def types(self, *args, **kwargs) -> list[str]:
        return [type(value).__name__ for value in (*args, *kwargs.values())]

    @export
    def add(self, a: int, b: int = 10, *, scale: int = 1) -> int:
        return (a + b) * scale

    @export
    def limits(self, limits: Limits, window: Window | None = None) -> dict[str, Any]:
        return {"limits": type(limits).__name__, "voltage": limits.voltage, "window": type(window).__name__}

    @export
    def payload(self, data: bytes) -> int:
        return len(data)

    @export
    def make_bytes(self, size: int) -> bytes:
        return b"\xab" * size

    @export
    def thread_name(self) -> str:
        return threading.current_thread().name

    @export
    async def loop_thread_name(self) -> str:
        return threading.current_thread().name

    @export
    def slow(self, seconds: float) -> float:
        time.sleep(seconds)
        return seconds

    @export
    def configured(self) -> str:
        return self.prefix


@pytest.fixture
def client() -> Iterator[DriverClient]:
    with serve(Calls(prefix="#")) as client:
        yield client


@pytest.mark.parametrize(
    "value",
    [None, True, 0, -7, 2**63, -(2**70), 1.5, "text", b"\x00\xff", [1, [b"a"]], {"k": {1: b"v"}}],
    ids=repr,
)
def test_values_arrive_and_return_exactly(client: DriverClient, value: Any) -> None:
    for method in ("echo", "echo_async"):
        result = client.call(method, value)
        assert result == value
        assert type(result) is type(value)


def test_ints_stay_ints_and_bytes_stay_bytes(client: DriverClient) -> None:
    assert client.call("types", 1, 1.0, b"1", "1", True, None) == ["int", "float", "bytes", "str", "bool", "NoneType"]


def test_keyword_arguments(client: DriverClient) -> None:
    assert client.call("add", 1) == 11
    assert client.call("add", 1, b=2) == 3
    assert client.call("add", a=1, b=2, scale=3) == 9
    assert client.call("types", x=b"1", y=2) == ["bytes", "int"]


def test_arguments_are_validated_into_annotated_types(client: DriverClient) -> None:
    # A pydantic model and a dataclass are sent as data and arrive as the annotated types.
    result = client.call("limits", Limits(voltage=5, current=1), Window(start=0, end=9))
    assert result == {"limits": "Limits", "voltage": 5.0, "window": "Window"}
    assert client.call("limits", {"voltage": 3.3, "current": 2}) == {
        "limits": "Limits",
        "voltage": 3.3,
        "window": "NoneType",
    }
    # Lax conversions: an int-valued float and text for bytes, as JSON-only peers send them.
    assert client.call("add", 2.0, 3.0) == 5
    assert client.call("payload", "abc") == 3


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("x",), {}, "add(): invalid argument 'a': Input should be a valid integer"),
        ((1.5,), {}, "add(): invalid argument 'a': Input should be a valid integer"),
        ((), {}, "add(): missing a required argument: 'a'"),
        ((1, 2, 3), {}, "add(): too many positional arguments"),
        ((1,), {"c": 1}, "add(): got an unexpected keyword argument 'c'"),
    ],
)
def test_bad_arguments_name_the_parameter(client: DriverClient, args: tuple, kwargs: dict, message: str) -> None:
    with pytest.raises(DriverInvalidArgument, match=re.escape(message)):
        client.call("add", *args, **kwargs)
    assert client.call("add", 1) == 11  # still usable


def test_nested_validation_error_says_where(client: DriverClient) -> None:
    with pytest.raises(ValueError, match=r"limits\(\): invalid argument 'limits' at current: .*\(got \{"):
        client.call("limits", {"voltage": 1, "current": "many"})


def test_driver_configuration_is_used(client: DriverClient) -> None:
    assert client.call("configured") == "#"


def test_sync_methods_run_in_worker_threads_and_async_ones_on_the_loop(client: DriverClient) -> None:
    assert client.call("thread_name").startswith("jumpstarter-driver")
    assert not client.call("loop_thread_name").startswith("jumpstarter-driver")


def test_a_blocked_sync_method_does_not_block_other_calls(client: DriverClient) -> None:
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(client.call, "slow", 1.0)
        time.sleep(0.1)
        started = time.monotonic()
        assert client.call("echo_async", "quick") == "quick"
        assert client.call("echo", "quick") == "quick"
        assert time.monotonic() - started < 0.5
        assert slow.result() == 1.0


def test_many_threads_share_one_client(client: DriverClient) -> None:
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda n: client.call("add", n, b=0), range(200)))
    assert results == list(range(200))


@pytest.mark.timeout(60)
def test_64_mib_argument_and_result(client: DriverClient) -> None:
    data = bytes(range(256)) * (64 * 1024 * 4)
    assert len(data) == 64 * 2**20
    assert client.call("payload", data) == len(data)
    result = client.call("make_bytes", 64 * 2**20)
    assert len(result) == 64 * 2**20 and result[:2] == b"\xab\xab"


def test_an_argument_over_the_call_limit_is_refused_before_sending(client: DriverClient) -> None:
    # Large bytes travel beside the call (test_bulk_values.py); other values travel in it.
    with pytest.raises(DriverInvalidArgument, match=r"over the 128 MiB a call to this exporter may carry"):
        client.call("payload", "x" * (129 * 2**20))


def test_unsendable_argument(client: DriverClient) -> None:
    with pytest.raises(DriverInvalidArgument, match="echo\\(\\): cannot send a value of type lock"):
        client.call("echo", threading.Lock())


def test_async_twins_on_the_event_loop(client: DriverClient) -> None:
    async def calls() -> list[Any]:
        return [await client.call_async("add", 1, b=1), await client.call_async("echo", b"\x01")]

    assert client.portal.call(calls) == [2, b"\x01"]


def test_blocking_call_from_the_event_loop_thread_is_refused(client: DriverClient) -> None:
    async def blocking_call() -> None:
        client.call("echo", 1)

    with pytest.raises(RuntimeError, match="in async code use the \\*_async twin"):
        client.portal.call(blocking_call)


def test_async_twin_from_another_event_loop_is_refused(client: DriverClient) -> None:
    async def foreign() -> None:
        await client.call_async("echo", 1)

    with pytest.raises(RuntimeError, match="must run on the event loop the client was connected on"):
        anyio.run(foreign)


@pytest.mark.anyio
async def test_serve_async_on_the_current_loop() -> None:
    async with serve_async(Calls()) as client:
        assert await client.call_async("add", 2, scale=2) == 24
        # The blocking API works from other threads.
        assert await anyio.to_thread.run_sync(client.call, "echo", "from a thread") == "from a thread"
