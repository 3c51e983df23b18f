"""OUR client drives the original jumpstarter 0.9.0 exporter (spec 5.3, R1-R5).

`peer_server.py` serves, with the original's Session, a tree of the original's drivers
(Composite, MockPower, EchoNetwork, a Proxy alias) and `Lab`, a driver written with the
original's API. One server process serves the whole module; each test connects to it with
our `connect()`.
"""

from __future__ import annotations

import bz2
import gzip
import io
import logging
import lzma
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import anyio
import pytest
from interop_shared import Color, Pair, payload, sha256, typed

from jumpstarter.client import (
    BlockingStream,
    CompositeClient,
    DriverClient,
    DriverError,
    DriverInvalidArgument,
    DriverMethodNotImplemented,
    DriverTimeout,
    connect,
)
from jumpstarter.client.connection import LEGACY_RESOURCE_IDLE_SECONDS

pytestmark = pytest.mark.interop

CHUNK = 64 * 1024


def plain(client: DriverClient) -> DriverClient:
    """A plain DriverClient of the same driver: its methods by name, whatever its client class."""
    return DriverClient(
        uuid=client.uuid,
        labels=client.labels,
        stack=client.stack,
        connection=client.connection,
    )


def echo(stream: BlockingStream, data: bytes) -> bytes:
    """Send `data` then EOF from a second thread while reading everything back until EOF."""

    def send_all() -> None:
        for offset in range(0, len(data), CHUNK):
            stream.send(data[offset : offset + CHUNK])
        stream.send_eof()

    received = bytearray()
    with ThreadPoolExecutor(1) as sender:
        sending = sender.submit(send_all)
        while True:
            try:
                received += stream.receive()
            except anyio.EndOfStream:
                break
        sending.result(timeout=30)
    return bytes(received)


# Values our client sends -> what comes back from the original's echo (JSON both ways: ints as floats).
ECHOES: dict[str, tuple[Any, Any]] = {
    "none": (None, None),
    "bool": (True, True),
    "int": (5, 5.0),
    "negative_int": (-7, -7.0),
    "largest_exact_int": (2**53, float(2**53)),
    "float": (2.5, 2.5),
    "inf": (float("inf"), None),
    "str": ("héllo ✓", "héllo ✓"),
    "utf8_bytes": (b"abc", "abc"),
    "list": ([1, "a", None, [2]], [1.0, "a", None, [2.0]]),
    "tuple": ((1, 2), [1.0, 2.0]),
    "dict": ({"k": {"n": 1}, "empty": {}}, {"k": {"n": 1.0}, "empty": {}}),
    "non_str_keys": ({1: "x"}, {"1": "x"}),
    "dataclass": (Pair(a=1, b="x"), {"a": 1.0, "b": "x"}),
    "enum": (Color.RED, "red"),
    "uuid": (UUID("12345678-1234-5678-1234-567812345678"), "12345678-1234-5678-1234-567812345678"),
    "datetime": (datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05"),
}

# Arguments JSON cannot carry exactly: our client refuses them before anything is sent.
UNSENDABLE: dict[str, tuple[tuple[Any, ...], dict[str, Any], str]] = {
    "big_int": ((2**53 + 1,), {}, "cannot be sent exactly"),
    "big_negative_int": ((-(2**53) - 1,), {}, "cannot be sent exactly"),
    "nested_big_int": (([1, {"n": 2**60}],), {}, "cannot be sent exactly"),
    "binary_bytes": ((b"\xff\xfe",), {}, "not UTF-8"),
    "keyword_argument": ((), {"value": 1}, "keyword arguments"),
    "over_4_MiB": (("x" * (5 * 1024 * 1024),), {}, "MiB"),
}

# Exception the original driver raises -> our client's class (the original sends ConnectionError as UNKNOWN).
DRIVER_ERRORS: dict[str, type[DriverError]] = {
    "ValueError": DriverInvalidArgument,
    "NotImplementedError": DriverMethodNotImplemented,
    "TimeoutError": DriverTimeout,
    "ConnectionError": DriverError,
    "RuntimeError": DriverError,
}

ECHO_SIZES = {"1B": 1, "64KiB": 64 * 1024, "10MiB": 10 * 1024 * 1024}

COMPRESS = {"gzip": gzip.compress, "xz": lzma.compress, "bz2": bz2.compress}
DECOMPRESSOR = {"gzip": lambda: zlib.decompressobj(wbits=47), "xz": lzma.LZMADecompressor, "bz2": bz2.BZ2Decompressor}
MAGIC = {"gzip": b"\x1f\x8b", "xz": b"\xfd7zXZ\x00", "bz2": b"BZh"}


@pytest.fixture(scope="module")
def exporter(upstream: Any) -> Iterator[dict[str, Any]]:
    """The original's exporter, one process for the module: {"socket": path, "uuids": {name: uuid}}."""
    with upstream.serve("peer_server.py") as info:
        yield info


@pytest.fixture
def root(exporter: dict[str, Any]) -> Iterator[DriverClient]:
    with connect(exporter["socket"]) as client:
        yield client


@pytest.fixture
def lab(root: DriverClient) -> DriverClient:
    return root.children["lab"]


# -- R1: the tree ----------------------------------------------------------------------------


def test_tree_of_the_original_exporter(root: DriverClient, exporter: dict[str, Any]) -> None:
    uuids = exporter["uuids"]
    # The original's composite client path maps to ours.
    assert type(root) is CompositeClient
    assert str(root.uuid) == uuids[""]
    assert list(root.children) == ["power", "echo", "lab", "alias", "group"]
    for name, child in root.children.items():
        assert str(child.uuid) == uuids[name]
        assert child.name == name
    assert type(root.children["lab"]) is DriverClient
    assert root.children["lab"].description == "Interop lab"
    assert root.children["echo"].description is None
    inner = root.children["group"].children["inner"]
    assert str(inner.uuid) == uuids["group.inner"]
    assert inner.description == "inner power"


def test_alias_is_the_same_driver_under_another_name(root: DriverClient) -> None:
    # A Proxy is reported with its target's uuid: the tree is keyed by position, not uuid.
    power, alias = root.children["power"], root.children["alias"]
    assert alias.uuid == power.uuid
    assert alias.name == "alias"
    assert alias.labels["jumpstarter.dev/client"] == "jumpstarter_driver_power.client.PowerClient"
    assert plain(alias).call("on") is None


def test_the_originals_drivers_get_our_driver_clients(root: DriverClient) -> None:
    # The original's power and network drivers name client classes that our driver packages
    # provide under the same paths, so they are driven through ours.
    from jumpstarter_driver_network.client import NetworkClient
    from jumpstarter_driver_power.client import PowerClient

    power, echo = root.children["power"], root.children["echo"]
    assert type(power) is PowerClient and type(echo) is NetworkClient
    power.on()
    assert [reading.voltage for reading in power.read()] == [0.0, 5.0]


# -- R2: calls -------------------------------------------------------------------------------


def test_mock_power_unary_and_streaming_calls(root: DriverClient) -> None:
    for power in (plain(root.children["power"]), plain(root.children["group"].children["inner"])):
        assert power.call("on") is None
        assert power.call("off") is None
        # The original sends its pydantic readings as JSON objects, numbers as floats.
        assert typed(list(power.streamingcall("read"))) == typed(
            [{"voltage": 0.0, "current": 0.0}, {"voltage": 5.0, "current": 2.0}]
        )


@pytest.mark.parametrize("name", ECHOES)
def test_value_round_trips_through_the_original_as_json(lab: DriverClient, name: str) -> None:
    sent, expected = ECHOES[name]
    assert typed(lab.call("echo", sent)) == typed(expected)


def test_what_the_original_driver_receives(lab: DriverClient) -> None:
    received = lab.call("types", 1, 2.5, "s", True, None, [1], {"a": 1}, b"x")
    assert received == ["float", "float", "str", "bool", "NoneType", "list", "dict", "str"]
    assert typed(lab.call("add", 2, 3)) == typed(5.0)


def test_streaming_calls_from_sync_and_async_generators(lab: DriverClient) -> None:
    assert typed(list(lab.streamingcall("count", 1000))) == typed([float(i) for i in range(1000)])
    assert typed(list(lab.streamingcall("ticks", 3))) == typed([{"i": 0.0}, {"i": 1.0}, {"i": 2.0}])
    assert list(lab.streamingcall("count", 0)) == []


def test_leaving_a_streaming_call_early_keeps_the_connection_usable(lab: DriverClient) -> None:
    items = []
    for item in lab.streamingcall("count", 1_000_000):
        items.append(item)
        if len(items) == 2:
            break
    assert items == [0.0, 1.0]
    # The connection is still good for the next call.
    assert lab.call("echo", "after") == "after"


def test_async_twins(lab: DriverClient) -> None:
    async def calls() -> tuple[Any, list[Any]]:
        items = [item async for item in lab.streamingcall_async("count", 3)]
        return await lab.call_async("add", 1, 2), items

    assert lab.portal.call(calls) == (3.0, [0.0, 1.0, 2.0])


@pytest.mark.parametrize("name", UNSENDABLE)
def test_argument_json_cannot_carry_is_refused_before_sending(lab: DriverClient, name: str) -> None:
    args, kwargs, message = UNSENDABLE[name]
    calls = lab.call("call_count")
    with pytest.raises(DriverInvalidArgument, match=message):
        lab.call("echo", *args, **kwargs)
    # Nothing reached the driver: no silently rounded number, no dropped keyword.
    assert lab.call("call_count") == calls


@pytest.mark.timeout(120)
def test_large_bytes_go_to_the_original_in_the_call_up_to_its_limit(lab: DriverClient) -> None:
    # The original advertises no bulk values: bytes travel in the call, as JSON text, up to its 4 MiB.
    assert lab.call("echo", b"y" * (3 << 20)) == "y" * (3 << 20)
    calls = lab.call("call_count")
    with pytest.raises(
        DriverInvalidArgument,
        match=r"echo\(\): the arguments take 256 MiB, over the 4 MiB a call to this exporter may carry; "
        r"send bulk data with client.resource\(\) or a byte stream",
    ):
        lab.call("echo", b"y" * (256 << 20))
    assert lab.call("call_count") == calls  # refused before anything was sent


def test_log_records_of_the_original_reach_our_loggers(
    root: DriverClient, lab: DriverClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="jumpstarter.remote")
    marker = f"marker-{uuid4()}"
    with root.log_stream():
        deadline = time.monotonic() + 10
        # The original polls its log queue; repeat until the record comes through.
        while not any(marker in record.getMessage() for record in caplog.records):
            assert time.monotonic() < deadline, "the original's log record never arrived"
            lab.call("log", marker)
            time.sleep(0.1)
    record = next(record for record in caplog.records if marker in record.getMessage())
    assert record.name == "jumpstarter.remote.driver"
    assert record.levelno == logging.WARNING


# -- R3: errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", DRIVER_ERRORS)
def test_driver_exception_of_the_original_maps_to_ours(lab: DriverClient, kind: str) -> None:
    with pytest.raises(DriverError) as error:
        lab.call("fail", kind, f"{kind} from the original")
    assert type(error.value) is DRIVER_ERRORS[kind]
    assert str(error.value) == f"{kind} from the original"


@pytest.mark.parametrize(
    ("call", "args", "text"),
    [
        ("call", ("no_such_method",), "method no_such_method not found on driver"),
        ("call", ("close",), "method close missing marker"),  # exists, not exported
        ("call", ("count", 1), "method count missing marker"),  # a generator through DriverCall
        ("streamingcall", ("echo", 1), "method echo missing marker"),  # a function through StreamingDriverCall
    ],
)
def test_call_that_reaches_no_method_is_not_implemented(
    lab: DriverClient, call: str, args: tuple[Any, ...], text: str
) -> None:
    with pytest.raises(DriverMethodNotImplemented, match=text):
        if call == "call":
            lab.call(*args)
        else:
            list(lab.streamingcall(*args))


@pytest.mark.parametrize(
    ("kind", "error_class"),
    [("ValueError", DriverInvalidArgument), ("NotImplementedError", DriverMethodNotImplemented)],
)
def test_streaming_failure_after_items(lab: DriverClient, kind: str, error_class: type[DriverError]) -> None:
    items = []
    with pytest.raises(error_class, match="stopped after 2"):
        for item in lab.streamingcall("fail_after", 2, kind):
            items.append(item)
    assert items == [0.0, 1.0]


def test_unknown_driver_uuid_is_a_driver_error(lab: DriverClient) -> None:
    ghost = DriverClient(uuid=uuid4(), stack=lab.stack, connection=lab.connection)
    # The original fails its lookup with an unhandled KeyError: UNKNOWN.
    with pytest.raises(DriverError) as error:
        ghost.call("on")
    assert type(error.value) is DriverError


# -- R4: byte streams ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ECHO_SIZES)
def test_echo_network_with_half_close(root: DriverClient, name: str) -> None:
    data = payload(ECHO_SIZES[name])
    with plain(root.children["echo"]).stream("connect") as stream:
        received = echo(stream, data)
    assert len(received) == len(data)
    assert sha256(received) == sha256(data)


def test_our_half_close_leaves_the_original_drivers_direction_open(lab: DriverClient) -> None:
    data = payload(300_000)
    with lab.stream("digest") as stream:
        for offset in range(0, len(data), CHUNK):
            stream.send(data[offset : offset + CHUNK])
        stream.send_eof()
        # The original driver answers only once our EOF (GOAWAY) reached it.
        answer = b"".join(stream)
    assert answer.decode() == f"{len(data)} {sha256(data)}"


@pytest.mark.parametrize(
    ("method", "text"),
    [("no_such_stream", "method no_such_stream not found on driver"), ("echo", "method echo missing marker")],
)
def test_opening_a_method_that_is_no_stream_is_not_implemented(lab: DriverClient, method: str, text: str) -> None:
    with pytest.raises(DriverMethodNotImplemented, match=text), lab.stream(method):
        pass


def test_empty_data_frames_from_the_original_are_not_an_end(lab: DriverClient) -> None:
    with lab.stream("sparse") as stream:
        chunks = list(stream)
        # The driver's EOF ended only its direction: ours still takes data.
        stream.send(b"still open")
        stream.send_eof()
    assert b"".join(chunks) == b"abcdef"
    assert b"" not in chunks


# -- R5: resources ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 5 * 1024 * 1024])
def test_resource_upload_to_the_original_driver(lab: DriverClient, size: int) -> None:
    data = payload(size)
    with lab.resource(data) as handle:
        assert handle["kind"] == "client_stream"
        assert handle["x_jmp_content_encoding"] is None
        result = lab.call("consume", handle)
    assert result == {"size": float(size), "sha256": sha256(data)}


def test_resource_upload_from_a_file(lab: DriverClient, tmp_path: Path) -> None:
    data = payload(1024 * 1024 + 3)
    (tmp_path / "image.bin").write_bytes(data)
    with lab.resource(tmp_path / "image.bin") as handle:
        assert lab.call("consume", handle) == {"size": float(len(data)), "sha256": sha256(data)}


@pytest.mark.parametrize("encoding", COMPRESS)
def test_compressed_resource_upload_is_decompressed_by_the_original(lab: DriverClient, encoding: str) -> None:
    data = payload(1_000_000)
    # Sent as declared: the original exporter accepts these codecs and decompresses for its driver.
    with lab.resource(COMPRESS[encoding](data), content_encoding=encoding) as handle:
        assert handle["x_jmp_content_encoding"] == encoding
        assert lab.call("consume", handle) == {"size": float(len(data)), "sha256": sha256(data)}


@pytest.mark.parametrize("encoding", COMPRESS)
def test_compressed_resource_download_is_not_decompressed_locally(lab: DriverClient, encoding: str) -> None:
    sink = io.BytesIO()
    with lab.resource(sink, content_encoding=encoding) as handle:
        lab.call("produce", handle, 1_000_000)
    # The bytes arrive in the handle's encoding, as the original compressed them (spec 4.6).
    received = sink.getvalue()
    assert received.startswith(MAGIC[encoding])
    # Only a prefix: the original never flushes its compressor (its own bug), so the tail is missing.
    decompressed = DECOMPRESSOR[encoding]().decompress(received)
    assert decompressed == payload(1_000_000)[: len(decompressed)]


@pytest.mark.parametrize("writable", [False, True], ids=["read-only", "writable"])
def test_a_handle_the_original_driver_never_opens_does_not_hang(lab: DriverClient, writable: bool) -> None:
    # The original never ends such a resource; our client stops waiting once nothing comes.
    started = time.monotonic()
    with lab.resource(io.BytesIO() if writable else b"x" * 1000) as handle:
        lab.call("ignore", handle)
    assert time.monotonic() - started < LEGACY_RESOURCE_IDLE_SECONDS + 3


def test_resource_download_from_the_original_driver(lab: DriverClient) -> None:
    size = 3 * 1024 * 1024
    sink = io.BytesIO()
    with lab.resource(sink) as handle:
        result = lab.call("produce", handle, size)
    assert sink.getvalue() == payload(size)
    assert result == {"size": float(size), "sha256": sha256(payload(size))}
