"""The original jumpstarter 0.9.0 client drives OUR exporter (spec 5.2, C1-C5, C7, resources).

Our `Session` serves driver trees in this process; `peer_client.py` runs the original's
`env()` client against it in the upstream virtual environment, once per tree, with every
operation the tests below need. Each test then checks one part of that run: what the
original client saw, and what our drivers (the very objects served) received.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from uuid import UUID

import anyio
import anyio.lowlevel
import pytest
from anyio.streams.stapled import StapledObjectStream
from interop_shared import Color, DigestStream, Pair, payload, sha256, typed

from jumpstarter.common.exceptions import ExporterNotReady
from jumpstarter.driver import Composite, Driver, export, exportstream
from jumpstarter.driver.tree import walk_tree
from jumpstarter.exporter import Exporter
from jumpstarter.testing import serve_socket
from jumpstarter.v1 import common_pb2

pytestmark = pytest.mark.interop

# A client class both implementations have, so the original client can drive our test drivers.
DRIVER_CLIENT = "jumpstarter.client.DriverClient"
ORIGINAL_CLIENT_CLASS = "jumpstarter.client.base.DriverClient"
ORIGINAL_STUB_CLASS = "jumpstarter.client.base.StubDriverClient"
COMPOSITE_CLIENT = "jumpstarter_driver_composite.client.CompositeClient"


def sample(name: str) -> dict[str, str]:
    """A rich Python value built by peer_client.py (see its SAMPLES)."""
    return {"$sample": name}


# -- what travels ----------------------------------------------------------------------------

# Arguments the original client passes -> what our driver receives (spec 4.2: JSON, ints as floats).
ARGUMENTS: dict[str, tuple[Any, Any]] = {
    "none": (None, None),
    "true": (True, True),
    "false": (False, False),
    "int": (5, 5.0),
    "negative_int": (-7, -7.0),
    "float": (2.5, 2.5),
    "big_int": (2**53 + 1, float(2**53)),  # the original rounds it before sending
    "inf": (sample("inf"), None),
    "nan": (sample("nan"), None),
    "str": ("héllo ✓", "héllo ✓"),
    "empty_str": ("", ""),
    "bytes": (sample("bytes"), "abc"),
    "list": ([1, "a", None, [2]], [1.0, "a", None, [2.0]]),
    "tuple": (sample("tuple"), [1.0, "two"]),
    "set": (sample("set"), [3.0]),
    "dict": ({"k": [1, {"n": None}], "empty": {}}, {"k": [1.0, {"n": None}], "empty": {}}),
    "int_keys": (sample("int_keys"), {"1": "one"}),
    "model": (sample("model"), {"x": 1.0, "y": 2.5}),
    "dataclass": (sample("dataclass"), {"a": 1.0, "b": "x"}),
    "uuid": (sample("uuid"), "12345678-1234-5678-1234-567812345678"),
    "datetime": (sample("datetime"), "2024-01-02T03:04:05"),
    "date": (sample("date"), "2024-01-02"),
    "timedelta": (sample("timedelta"), "PT1M30S"),
    "decimal": (sample("decimal"), "1.25"),
    "path": (sample("path"), "/tmp/firmware.bin"),
    "str_enum": (sample("str_enum"), "red"),
    "int_enum": (sample("int_enum"), 3.0),
}


# Values our driver returns -> what the original client gets.
RESULTS: dict[str, tuple[Any, Any]] = {
    "none": (None, None),
    "true": (True, True),
    "int": (5, 5.0),
    "float": (0.1, 0.1),
    "str": ("ünïcode ✓", "ünïcode ✓"),
    "bytes": (b"abc", "abc"),
    "list": ([1, "two", None, [3.5]], [1.0, "two", None, [3.5]]),
    "empty_list": ([], []),
    "dict": ({"a": 1, "nested": {"b": [True, None]}}, {"a": 1.0, "nested": {"b": [True, None]}}),
    "empty_dict": ({}, {}),
    "tuple": ((1, 2), [1.0, 2.0]),
    "non_str_keys": ({1: "one", 2.5: "x"}, {"1": "one", "2.5": "x"}),
    "inf": (float("inf"), None),
    "dataclass": (Pair(a=1, b="x"), {"a": 1.0, "b": "x"}),
    "datetime": (datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05"),
    "timedelta": (timedelta(minutes=1, seconds=30), "PT1M30S"),
    "uuid": (UUID("12345678-1234-5678-1234-567812345678"), "12345678-1234-5678-1234-567812345678"),
    "enum": (Color.RED, "red"),
}

# Results JSON cannot carry exactly: our exporter refuses them instead of altering them.
UNSENDABLE_RESULTS = {"big_int": 2**53 + 1, "binary_bytes": b"\xff\xfe"}

EXCEPTIONS: dict[str, type[Exception]] = {
    "ValueError": ValueError,
    "NotImplementedError": NotImplementedError,
    "TimeoutError": TimeoutError,
    "ConnectionError": ConnectionError,
    "OSError": OSError,
    "RuntimeError": RuntimeError,
    "ExporterNotReady": ExporterNotReady,
}

# Exception a driver raises -> gRPC status (spec 4.3, post-0.9.0 column) -> original client's class.
DRIVER_ERRORS: dict[str, tuple[str, str]] = {
    "ValueError": ("INVALID_ARGUMENT", "DriverInvalidArgument"),
    "NotImplementedError": ("UNIMPLEMENTED", "DriverMethodNotImplemented"),
    "TimeoutError": ("DEADLINE_EXCEEDED", "DriverError"),
    "ConnectionError": ("UNAVAILABLE", "DriverError"),
    "OSError": ("INTERNAL", "DriverError"),
    "RuntimeError": ("UNKNOWN", "DriverError"),
}

# Calls that do not reach a driver method -> gRPC status -> original client's class.
CALL_ERRORS: dict[str, tuple[dict[str, Any], str, str]] = {
    "unknown_method": ({"method": "no_such_method"}, "NOT_FOUND", "DriverMethodNotImplemented"),
    "not_exported": ({"method": "helper"}, "NOT_FOUND", "DriverMethodNotImplemented"),
    "private": ({"method": "_secret"}, "NOT_FOUND", "DriverMethodNotImplemented"),
    "generator_as_unary": ({"method": "count", "args": [3]}, "NOT_FOUND", "DriverMethodNotImplemented"),
    "wrong_arity": ({"method": "scale", "args": [1]}, "INVALID_ARGUMENT", "DriverInvalidArgument"),
    "invalid_type": ({"method": "scale", "args": ["many", 1.0]}, "INVALID_ARGUMENT", "DriverInvalidArgument"),
}

STREAMINGS: dict[str, tuple[dict[str, Any], list[Any]]] = {
    "sync_generator": ({"method": "count", "args": [1000]}, [float(i) for i in range(1000)]),
    "async_generator": ({"method": "ticks", "args": [4]}, [{"i": float(i), "square": float(i * i)} for i in range(4)]),
    "empty_generator": ({"method": "nothing"}, []),
}

# Generators that fail after some items -> the items, then the original client's class.
STREAMING_ERRORS: dict[str, tuple[int, str]] = {
    "ValueError": (2, "DriverInvalidArgument"),
    "NotImplementedError": (0, "DriverMethodNotImplemented"),
    "RuntimeError": (1, "DriverError"),
}
STREAMING_ERROR_CASES = [
    *(pytest.param("fail_after_sync", kind, id=f"sync-{kind}") for kind in STREAMING_ERRORS),
    *(pytest.param("fail_after", kind, id=f"async-{kind}") for kind in STREAMING_ERRORS),
]

ECHO_SIZES = {"1B": 1, "64KiB": 64 * 1024, "10MiB": 10 * 1024 * 1024}

# Size of the file a presigned GET handle points at.
PRESIGNED_SIZE = 2 * 1024 * 1024 + 7

ENCODINGS = [None, "gzip", "xz", "bz2", "zstd"]

# -- our drivers -----------------------------------------------------------------------------


@dataclass(kw_only=True)
class Values(Driver):
    """Keeps the arguments it receives; returns the sample results by name."""

    received: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def client(cls) -> str:
        return DRIVER_CLIENT

    @export
    def record(self, key: str, value: Any) -> None:
        # `Any` is not validated: the value is kept exactly as it arrived.
        self.received[key] = value

    @export
    def scale(self, count: int, ratio: float) -> float:
        # Annotated parameters are validated: an int parameter gets an int even from a JSON peer.
        self.received["scale"] = [count, ratio]
        return count * ratio

    @export
    def result(self, name: str) -> Any:
        return RESULTS[name][0] if name in RESULTS else UNSENDABLE_RESULTS[name]

    @export
    async def result_async(self, name: str) -> Any:
        await anyio.lowlevel.checkpoint()
        return RESULTS[name][0]

    @export
    def text(self, size: int) -> str:
        return "x" * size

    @export
    def blob(self, size: int) -> bytes:
        return b"y" * size

    @export
    def count(self, n: int) -> Iterator[int]:
        yield from range(n)

    @export
    async def ticks(self, n: int) -> AsyncIterator[dict[str, int]]:
        for i in range(n):
            await anyio.lowlevel.checkpoint()
            yield {"i": i, "square": i * i}

    @export
    def nothing(self) -> Iterator[None]:
        yield from ()

    @export
    def log(self, level: str, message: str) -> None:
        self.logger.log(logging.getLevelName(level), message)

    @export
    def log_system(self, message: str) -> None:
        # Not a driver logger: the record is the exporter's own (source SYSTEM).
        logging.getLogger("interop.exporter").warning(message)

    def helper(self) -> str:
        return "not exported"

    def _secret(self) -> str:
        return "private"


@dataclass(kw_only=True)
class Failing(Driver):
    """Raises the exception it is asked for."""

    @classmethod
    def client(cls) -> str:
        return DRIVER_CLIENT

    @export
    def fail(self, kind: str, message: str) -> None:
        raise EXCEPTIONS[kind](message)

    @export
    async def fail_after(self, items: int, kind: str) -> AsyncIterator[int]:
        for i in range(items):
            yield i
        raise EXCEPTIONS[kind](f"stopped after {items}")

    @export
    def fail_after_sync(self, items: int, kind: str) -> Iterator[int]:
        yield from range(items)
        raise EXCEPTIONS[kind](f"stopped after {items}")


class BannerStream(DigestStream):
    """Sends a banner and its EOF at once, then keeps reading the client's bytes until the client's EOF."""

    BANNER = b"hello from our driver\n"

    async def receive(self) -> bytes:
        if self.answered:
            raise anyio.EndOfStream
        self.answered = True
        return self.BANNER


@dataclass(kw_only=True)
class Streams(Driver):
    """Byte streams: an echo, and one half-closing in each direction."""

    banners: list[BannerStream] = field(default_factory=list)

    @classmethod
    def client(cls) -> str:
        return DRIVER_CLIENT

    @exportstream
    @asynccontextmanager
    async def connect(self) -> AsyncIterator[StapledObjectStream[bytes]]:
        send, receive = anyio.create_memory_object_stream[bytes](32)
        async with StapledObjectStream(send, receive) as echo:
            yield echo

    @exportstream
    @asynccontextmanager
    async def digest(self) -> AsyncIterator[DigestStream]:
        yield DigestStream()

    @exportstream
    @asynccontextmanager
    async def banner(self) -> AsyncIterator[BannerStream]:
        stream = BannerStream()
        self.banners.append(stream)
        yield stream

    @export
    async def banner_upload(self) -> dict[str, Any]:
        """What the client sent after our banner's EOF; waits for the client's own EOF."""
        with anyio.fail_after(10):
            await self.banners[-1].client_done.wait()
        return {"size": self.banners[-1].size, "sha256": self.banners[-1].hash.hexdigest()}


@dataclass(kw_only=True)
class Uploads(Driver):
    """Reads (or writes) client resources."""

    @classmethod
    def client(cls) -> str:
        return DRIVER_CLIENT

    @export
    async def consume(self, handle: dict[str, Any]) -> dict[str, Any]:
        digest, size = hashlib.sha256(), 0
        async with self.resource(handle) as stream:
            async for chunk in stream:
                digest.update(chunk)
                size += len(chunk)
        return {"size": size, "sha256": digest.hexdigest()}

    @export
    async def produce(self, handle: dict[str, Any], size: int) -> dict[str, Any]:
        data = payload(size)
        async with self.resource(handle) as stream:
            for offset in range(0, size, 256 * 1024):
                await stream.send(data[offset : offset + 256 * 1024])
        return {"size": size, "sha256": sha256(data)}

    @export
    def ignore(self, handle: dict[str, Any]) -> None:
        """Receives a handle and never opens it: the client must not wait for it forever."""


@dataclass(kw_only=True)
class Absent(Driver):
    """Names a client class nobody has installed."""

    @classmethod
    def client(cls) -> str:
        return "interop_absent_package.client.AbsentClient"


def composite_tree() -> Composite:
    return Composite(
        children={
            "values": Values(
                description="Keeps what it receives",
                methods_description={"record": "Store one value"},
            ),
            "failing": Failing(),
            "streams": Streams(),
            "uploads": Uploads(),
            # Driver labels may not override the reserved ones.
            "group": Composite(
                children={
                    "inner": Values(
                        labels={"role": "inner", "jumpstarter.dev/name": "spoof", "jumpstarter.dev/client": "x.y.Z"}
                    )
                }
            ),
            "absent": Absent(),
        }
    )


# -- the runs of the original client ---------------------------------------------------------


def op(name: str, kind: str, *path: str, **params: Any) -> dict[str, Any]:
    """One operation for peer_client.py: `kind` on the driver at `path` (children names from the root)."""
    return {"id": name, "op": kind, "path": list(path), **params}


def composite_operations(http_url: str = "http://127.0.0.1:9/") -> list[dict[str, Any]]:
    """Everything the original client does with the composite tree; `http_url` serves presigned GETs."""
    MiB = 1024 * 1024
    presigned = {"kind": "presigned_request", "url": http_url, "method": "GET", "headers": {"x-interop": "1"}}
    return [
        # C1
        op("tree", "tree"),
        op("report", "report"),
        op("absent", "call", "absent", method="anything"),
        op("inner", "call", "group", "inner", method="result", args=["str"]),
        # C2
        *(
            op(f"arg-{name}", "call", "values", method="record", args=[name, sent])
            for name, (sent, _) in ARGUMENTS.items()
        ),
        *(
            op(f"result-{name}", "call", "values", method="result", args=[name])
            for name in [*RESULTS, *UNSENDABLE_RESULTS]
        ),
        op("scale", "call", "values", method="scale", args=[3, 0.5]),
        op("async_result", "call", "values", method="result_async", args=["dict"]),
        op("text-3MiB", "call", "values", method="text", args=[3 * MiB]),
        op("text-5MiB", "call", "values", method="text", args=[5 * MiB]),
        op("record-5MiB", "call", "values", method="record", args=["5MiB", "y" * 5 * MiB]),
        # Bytes large enough to travel beside the call between our peers go in it to the original.
        op("blob-3MiB", "call", "values", method="blob", args=[3 * MiB]),
        op("blob-256MiB", "call", "values", method="blob", args=[256 * MiB]),
        # C3
        *(op(f"streaming-{name}", "streamingcall", "values", **call) for name, (call, _) in STREAMINGS.items()),
        *(
            op(f"streaming-error-{method}-{kind}", "streamingcall", "failing", method=method, args=[items, kind])
            for method in ("fail_after", "fail_after_sync")
            for kind, (items, _) in STREAMING_ERRORS.items()
        ),
        # C4
        *(
            op(f"error-{kind}", "call", "failing", method="fail", args=[kind, f"{kind} from driver"])
            for kind in [*DRIVER_ERRORS, "ExporterNotReady"]
        ),
        *(op(f"call-error-{name}", "call", "values", **call) for name, (call, _, _) in CALL_ERRORS.items()),
        op("unary_as_streaming", "streamingcall", "values", method="result", args=["int"]),
        op("stream_as_unary", "call", "streams", method="connect"),
        op("unknown_uuid", "raw", rpc="DriverCall"),
        # C5
        *(
            op(f"echo-{name}", "stream", "streams", method="connect", size=size, order="concurrent")
            for name, size in ECHO_SIZES.items()
        ),
        op("digest", "stream", "streams", method="digest", size=300_000, order="send_first"),
        op("banner", "stream", "streams", method="banner", size=100_000, order="receive_first"),
        op("banner_upload", "call", "streams", method="banner_upload"),
        op("stream_not_exported", "raw", "streams", rpc="Stream", method="banner_upload"),
        op("stream_unknown", "raw", "streams", rpc="Stream", method="no_such_stream"),
        # resources
        *(
            op(f"upload-{encoding}", "upload", "uploads", method="consume", size=1_500_000, encoding=encoding)
            for encoding in ["gzip", "xz", "bz2", "zstd"]
        ),
        op("upload-None", "upload", "uploads", method="consume", size=5 * MiB),
        op("upload-empty", "upload", "uploads", method="consume", size=0),
        op("upload-unused", "upload", "uploads", method="ignore", size=MiB),
        op("download", "download", "uploads", method="produce", size=3 * MiB),
        op("presigned-get", "call", "uploads", method="consume", args=[presigned]),
        op("resource_metadata-None", "resource_metadata", "uploads"),
        op("resource_metadata-gzip", "resource_metadata", "uploads", encoding="gzip"),
        # C7
        op("logs-driver", "logs", "values", method="log", args=["WARNING", "marker-driver-7"]),
        op("logs-system", "logs", "values", method="log_system", args=["marker-system-7"]),
        op("log_record-driver", "log_records", "values", method="log", args=["ERROR", "marker-driver-8"]),
        op("log_record-system", "log_records", "values", method="log_system", args=["marker-system-8"]),
        op("status", "status"),
        op("reset", "raw", rpc="Reset"),
        op("end_session", "end_session"),
    ]


SINGLE_OPERATIONS = [
    op("tree", "tree"),
    op("report", "report"),
    op("call", "call", method="result", args=["dict"]),
    op("streaming", "streamingcall", method="count", args=[3]),
    op("status", "status"),
]


@dataclass
class Run:
    """One run of the original client against one of our trees."""

    root: Driver
    outcomes: dict[str, Any]

    def result(self, operation: str) -> Any:
        assert operation in self.outcomes, f"the original client did not connect: {self.outcomes.get('connect')}"
        outcome = self.outcomes[operation]
        assert outcome["ok"], f"{operation} failed in the original client: {outcome}"
        return outcome["result"]

    def error(self, operation: str) -> dict[str, Any]:
        assert operation in self.outcomes, f"the original client did not connect: {self.outcomes.get('connect')}"
        outcome = self.outcomes[operation]
        assert not outcome["ok"], f"{operation} should have failed, but returned {outcome['result']!r}"
        return outcome

    def driver(self, *path: str) -> Any:
        driver = self.root
        for name in path:
            driver = driver.children[name]
        return driver


def run_original_client(upstream: Any, our_exporter: Any, root: Driver, operations: list[Any], **status: Any) -> Run:
    with our_exporter(root) as (provider, path):
        if status:
            # Nothing is connected yet, so updating from this thread races with nothing.
            provider.status.update(**status)
        outcomes = upstream.run(
            "peer_client.py",
            operations,
            env={"JUMPSTARTER_HOST": path, "JMP_DRIVERS_ALLOW": "UNSAFE", "TERM": "dumb"},
            timeout=60,
        )
    return Run(root, outcomes)


@contextmanager
def http_file(data: bytes) -> Iterator[str]:
    """Serve `data` over HTTP on localhost, the target of presigned GET handles; yield its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="interop-http")
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/firmware.bin"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def composite(upstream: Any, our_exporter: Any) -> Run:
    with http_file(payload(PRESIGNED_SIZE)) as url:
        # One status update before the run: GetStatus must then report a previous status.
        return run_original_client(
            upstream,
            our_exporter,
            composite_tree(),
            composite_operations(url),
            status=common_pb2.EXPORTER_STATUS_LEASE_READY,
            message="ready for interop",
        )


@pytest.fixture(scope="module")
def single(upstream: Any, our_exporter: Any) -> Run:
    return run_original_client(upstream, our_exporter, Values(), SINGLE_OPERATIONS)


# -- C1: report and tree ---------------------------------------------------------------------


def test_composite_tree_is_rebuilt_with_names_classes_and_uuids(composite: Run) -> None:
    tree = composite.result("tree")
    assert tree["class"] == COMPOSITE_CLIENT
    assert tree["uuid"] == str(composite.root.uuid)
    assert list(tree["children"]) == ["values", "failing", "streams", "uploads", "group", "absent"]
    for name, child in tree["children"].items():
        driver = composite.driver(name)
        assert child["uuid"] == str(driver.uuid)
        assert child["labels"]["jumpstarter.dev/name"] == name
        assert child["labels"]["jumpstarter.dev/client"] == driver.client()
    assert tree["children"]["values"]["class"] == ORIGINAL_CLIENT_CLASS
    assert tree["children"]["group"]["class"] == COMPOSITE_CLIENT
    inner = tree["children"]["group"]["children"]["inner"]
    assert inner["uuid"] == str(composite.driver("group", "inner").uuid)
    assert inner["class"] == ORIGINAL_CLIENT_CLASS
    assert inner["labels"]["role"] == "inner"
    assert inner["labels"]["jumpstarter.dev/name"] == "inner"


def test_descriptions_reach_the_original_client(composite: Run) -> None:
    values = composite.result("tree")["children"]["values"]
    assert values["description"] == "Keeps what it receives"
    assert values["methods_description"] == {"record": "Store one value"}
    assert composite.result("tree")["children"]["failing"]["description"] is None


def test_unknown_client_class_becomes_a_stub_not_an_error(composite: Run) -> None:
    assert composite.result("tree")["children"]["absent"]["class"] == ORIGINAL_STUB_CLASS
    error = composite.error("absent")
    assert "ImportError" in error["mro"]
    assert "interop_absent_package.client.AbsentClient" in error["message"]


def test_report_is_depth_first_with_parents_before_children(composite: Run) -> None:
    reports = composite.result("report")["reports"]
    expected = list(walk_tree(composite.root))
    assert [entry["uuid"] for entry in reports] == [str(place.node.uuid) for place in expected]
    for entry, (_, parent, name, _) in zip(reports, expected, strict=True):
        assert entry["parent_uuid"] == (str(parent.uuid) if parent else None)
        assert entry["labels"].get("jumpstarter.dev/name") == name
        assert "jumpstarter.dev/client" in entry["labels"]
    # Absent (not empty) description where the driver has none.
    assert [entry["description"] for entry in reports][:3] == [None, "Keeps what it receives", None]


def test_single_driver_root(single: Run) -> None:
    tree = single.result("tree")
    assert tree["class"] == ORIGINAL_CLIENT_CLASS
    assert tree["uuid"] == str(single.root.uuid)
    assert tree["children"] == {}
    assert "jumpstarter.dev/name" not in tree["labels"]
    (entry,) = single.result("report")["reports"]
    assert entry["parent_uuid"] is None
    assert typed(single.result("call")["value"]) == typed(RESULTS["dict"][1])
    assert single.result("streaming")["items"] == [0.0, 1.0, 2.0]


# -- C2: unary calls -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ARGUMENTS)
def test_argument_arrives_as_json(composite: Run, name: str) -> None:
    assert composite.result(f"arg-{name}") == {"type": "NoneType", "value": None}
    assert typed(composite.driver("values").received[name]) == typed(ARGUMENTS[name][1])


@pytest.mark.parametrize("name", RESULTS)
def test_result_decodes_in_the_original_client(composite: Run, name: str) -> None:
    assert typed(composite.result(f"result-{name}")["value"]) == typed(RESULTS[name][1])


def test_annotated_parameters_get_their_types_back_from_json(composite: Run) -> None:
    # The original sends 3 as 3.0; our dispatch validates it back into the annotated int.
    assert typed(composite.driver("values").received["scale"]) == typed([3, 0.5])
    assert typed(composite.result("scale")["value"]) == typed(1.5)


def test_async_methods_and_nested_children_are_callable(composite: Run) -> None:
    assert typed(composite.result("async_result")["value"]) == typed(RESULTS["dict"][1])
    assert composite.result("inner")["value"] == RESULTS["str"][1]


@pytest.mark.parametrize("name", UNSENDABLE_RESULTS)
def test_result_json_cannot_carry_is_an_error_not_a_corruption(composite: Run, name: str) -> None:
    error = composite.error(f"result-{name}")
    assert error["type"] == "DriverError"
    assert error["message"].startswith("DriverCall 'result' failed with gRPC UNKNOWN: ")
    assert "cannot be sent" in error["message"]


def test_results_over_4_mib_are_refused_clearly_for_the_original_client(composite: Run) -> None:
    # The original keeps gRPC's 4 MiB receive limit (spec 4.2): our exporter says so instead of sending.
    assert len(composite.result("text-3MiB")["value"]) == 3 * 1024 * 1024
    error = composite.error("text-5MiB")
    assert error["type"] == "DriverError"
    assert "RESOURCE_EXHAUSTED" in error["message"]
    assert "over the 4 MiB this client accepts in one message" in error["message"]


def test_large_bytes_results_reach_the_original_client_in_the_call_up_to_its_limit(composite: Run) -> None:
    # Our peers send large bytes beside the call; the original never asks for that, and gets
    # them in the response as JSON text, up to the 4 MiB it accepts, and a clear error beyond.
    assert composite.result("blob-3MiB")["value"] == "y" * 3 * 1024 * 1024
    error = composite.error("blob-256MiB")
    assert "RESOURCE_EXHAUSTED" in error["message"]
    assert "returned 256.0 MiB, over the 4 MiB this client accepts in one message" in error["message"]
    assert "return bulk data through a resource or a byte stream" in error["message"]


def test_arguments_over_4_mib_from_the_original_client_are_accepted(composite: Run) -> None:
    # More than an original exporter takes: ours accepts up to its own, larger, limit.
    assert len(composite.driver("values").received["5MiB"]) == 5 * 1024 * 1024


# -- C3: streaming calls ---------------------------------------------------------------------


@pytest.mark.parametrize("name", STREAMINGS)
def test_streaming_call_yields_every_item_in_order(composite: Run, name: str) -> None:
    outcome = composite.result(f"streaming-{name}")
    assert outcome["error"] is None
    assert typed(outcome["items"]) == typed(STREAMINGS[name][1])


@pytest.mark.parametrize(("method", "kind"), STREAMING_ERROR_CASES)
def test_streaming_call_failure_comes_after_the_items_before_it(composite: Run, method: str, kind: str) -> None:
    items, error_class = STREAMING_ERRORS[kind]
    outcome = composite.result(f"streaming-error-{method}-{kind}")
    assert outcome["items"] == [float(i) for i in range(items)]
    assert outcome["error"]["type"] == error_class
    # Streaming calls carry the driver's text as it is (spec 4.3).
    assert outcome["error"]["message"] == f"stopped after {items}"


# -- C4: error mapping -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", DRIVER_ERRORS)
def test_driver_exception_maps_to_the_original_client_exception(composite: Run, kind: str) -> None:
    code, error_class = DRIVER_ERRORS[kind]
    error = composite.error(f"error-{kind}")
    assert error["type"] == error_class
    assert error["message"] == f"DriverCall 'fail' failed with gRPC {code}: {kind} from driver"


def test_original_error_classes_keep_their_builtin_bases(composite: Run) -> None:
    assert "ValueError" in composite.error("error-ValueError")["mro"]
    assert "NotImplementedError" in composite.error("error-NotImplementedError")["mro"]


def test_exporter_not_ready_carries_the_raw_details(composite: Run) -> None:
    error = composite.error("error-ExporterNotReady")
    assert error["type"] == "ExporterNotReady"
    assert error["message"] == "ExporterNotReady from driver"


class Unready(Driver):
    """A driver whose reset fails: the exporter cannot start a session."""

    @classmethod
    def client(cls) -> str:
        return DRIVER_CLIENT

    def reset(self) -> None:
        raise OSError("the relay does not answer")


def test_drivers_that_cannot_start_are_refused_with_the_reason(upstream: Any) -> None:
    # An exporter of `jmp exporter run`'s kind (a session per client). FAILED_PRECONDITION: the original
    # client raises the status with its details; UNAVAILABLE would have become its ExporterUnreachableError
    # ("Exporter did not respond to initial connection"), the reason hidden.
    with serve_socket(Exporter(Unready)) as path:
        outcomes = upstream.run(
            "peer_client.py", [], env={"JUMPSTARTER_HOST": path, "JMP_DRIVERS_ALLOW": "UNSAFE"}, timeout=60
        )
    refused = outcomes["connect"]
    assert refused["type"] == "AioRpcError"
    assert "StatusCode.FAILED_PRECONDITION" in refused["text"]
    assert 'details = "the exporter could not start its drivers: OSError: the relay does not answer"' in refused["text"]


@pytest.mark.parametrize("name", CALL_ERRORS)
def test_call_that_reaches_no_method_is_rejected(composite: Run, name: str) -> None:
    call, code, error_class = CALL_ERRORS[name]
    error = composite.error(f"call-error-{name}")
    assert error["type"] == error_class
    assert error["message"].startswith(f"DriverCall '{call['method']}' failed with gRPC {code}: ")


def test_wrong_call_kind_is_not_found(composite: Run) -> None:
    # A unary method through StreamingDriverCall: NOT_FOUND, which the original's streaming path calls DriverError.
    outcome = composite.result("unary_as_streaming")
    assert outcome["items"] == []
    assert outcome["error"]["type"] == "DriverError"
    assert "result" in outcome["error"]["message"]
    error = composite.error("stream_as_unary")
    assert error["type"] == "DriverMethodNotImplemented"
    assert error["message"].startswith("DriverCall 'connect' failed with gRPC NOT_FOUND: ")


def test_unknown_driver_uuid_is_rejected(composite: Run) -> None:
    # 0.9.0 answers UNKNOWN (an unhandled lookup error); ours says NOT_FOUND, with a hint.
    outcome = composite.result("unknown_uuid")
    assert outcome["code"] == "NOT_FOUND"
    assert "no driver with uuid" in outcome["details"]


# -- C5: byte streams ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ECHO_SIZES)
def test_echo_stream_returns_every_byte_in_order_then_eof(composite: Run, name: str) -> None:
    outcome = composite.result(f"echo-{name}")
    assert outcome["received"] == outcome["sent"] == ECHO_SIZES[name]
    assert outcome["received_sha256"] == outcome["sent_sha256"] == sha256(payload(ECHO_SIZES[name]))


def test_client_half_close_leaves_the_driver_direction_open(composite: Run) -> None:
    # The driver answers only after the client's EOF (GOAWAY) reached it.
    outcome = composite.result("digest")
    assert outcome["received_head"] == f"300000 {sha256(payload(300_000))}"


def test_driver_half_close_leaves_the_client_direction_open(composite: Run) -> None:
    # The client read the banner up to the driver's EOF, then sent its bytes: all arrived.
    assert composite.result("banner")["received_head"] == BannerStream.BANNER.decode()
    assert composite.result("banner_upload")["value"] == {"size": 100_000.0, "sha256": sha256(payload(100_000))}


def test_opening_a_method_that_is_no_stream_is_not_found(composite: Run) -> None:
    for operation in ("stream_not_exported", "stream_unknown"):
        assert composite.result(operation)["code"] == "NOT_FOUND"


# -- resources -------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_resource_upload_is_byte_identical(composite: Run, encoding: str | None) -> None:
    outcome = composite.result(f"upload-{encoding}")
    assert outcome["handle"]["kind"] == "client_stream"
    assert outcome["handle"]["x_jmp_content_encoding"] == encoding
    # The driver reads the decompressed bytes, whatever encoding they travelled in.
    assert outcome["result"] == {"size": float(outcome["sent"]), "sha256": outcome["sent_sha256"]}


def test_empty_resource_upload(composite: Run) -> None:
    assert composite.result("upload-empty")["result"] == {"size": 0.0, "sha256": sha256(b"")}


def test_resource_handle_the_driver_never_opens_does_not_hang(composite: Run) -> None:
    assert composite.result("upload-unused")["result"] is None


def test_resource_download_is_byte_identical(composite: Run) -> None:
    outcome = composite.result("download")
    size = 3 * 1024 * 1024
    assert outcome["received"] == size
    assert outcome["received_sha256"] == sha256(payload(size)) == outcome["result"]["sha256"]


def test_presigned_get_resource_is_fetched_by_the_exporter(composite: Run) -> None:
    assert composite.result("presigned-get")["value"] == {
        "size": float(PRESIGNED_SIZE),
        "sha256": sha256(payload(PRESIGNED_SIZE)),
    }


@pytest.mark.parametrize("encoding", [None, "gzip"])
def test_resource_initial_metadata(composite: Run, encoding: str | None) -> None:
    metadata = composite.result(f"resource_metadata-{encoding}")
    handle = json.loads(metadata["resource"])
    assert handle["kind"] == "client_stream"
    UUID(handle["uuid"])
    assert handle["x_jmp_content_encoding"] == encoding
    # "None accepted" travels as the empty string, as the original sends it (spec 4.5).
    assert metadata["x_jmp_accept_encoding"] == (encoding or "")


# -- C7: status, session end, logs, reset ----------------------------------------------------


def test_get_status_reports_version_and_previous_status(composite: Run, single: Run) -> None:
    assert composite.result("status") == {
        "status": "EXPORTER_STATUS_LEASE_READY",
        "has_message": True,
        "message": "ready for interop",
        "status_version": 1,
        "previous_status": "EXPORTER_STATUS_LEASE_READY",
        "client_status": "LEASE_READY",
    }
    status = single.result("status")
    assert status["status_version"] == 0
    assert status["previous_status"] is None


def test_end_session_without_a_lease_says_so(composite: Run) -> None:
    outcome = composite.result("end_session")
    assert outcome["success"] is False
    assert outcome["has_message"] and outcome["message"]
    assert outcome["client_result"] is False


def test_reset_is_unimplemented(composite: Run) -> None:
    assert composite.result("reset")["code"] == "UNIMPLEMENTED"


def test_log_stream_records_reach_the_original_client_by_source(composite: Run) -> None:
    assert ["exporter:driver", "WARNING", "marker-driver-7"] in composite.result("logs-driver")
    assert ["exporter:system", "WARNING", "marker-system-7"] in composite.result("logs-system")


def test_log_stream_records_carry_severity_name_and_source(composite: Run) -> None:
    # The original client reads an absent source as SYSTEM: ours always sets it (spec 3.2).
    assert composite.result("log_record-driver") == {
        "uuid": "",
        "severity": "ERROR",
        "message": "marker-driver-8",
        "source": "LOG_SOURCE_DRIVER",
    }
    assert composite.result("log_record-system")["source"] == "LOG_SOURCE_SYSTEM"


def test_operation_ids_are_unique() -> None:
    # A repeated id would silently hide the outcome of an earlier operation.
    ids = [operation["id"] for operation in composite_operations()]
    assert len(ids) == len(set(ids))
