"""Drives an exporter session with the ORIGINAL jumpstarter 0.9.0 client.

Run with the original's python, with JUMPSTARTER_HOST naming the session's Unix socket and
JMP_DRIVERS_ALLOW=UNSAFE. Reads a JSON list of operations on stdin, each with an "id", an
"op" and its parameters; runs them in order through the original's `env()` client and
prints one JSON object mapping each id to its outcome. A failing operation records its
exception (see peer_io.describe_error) and the run goes on. When `env()` itself fails (the
exporter refused the connection), the object holds that failure alone, as "connect".

Arguments are JSON values, except {"$sample": name}, which stands for one of the Python
values of SAMPLES: the rich types the original encodes itself (bytes, tuples, models...).
"""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import inspect
import json
import logging
import lzma
import sys
from contextlib import ExitStack
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import anyio
import grpc
from anyio.abc import ObjectStream
from backports import zstd
from google.protobuf import empty_pb2
from interop_shared import payload, sha256
from jumpstarter_protocol import jumpstarter_pb2
from jumpstarter_protocol.jumpstarter.v1 import common_pb2
from peer_io import describe_error, send, take_stdout
from pydantic import BaseModel

from jumpstarter.common.streams import DriverStreamRequest, ResourceStreamRequest, StreamRequestMetadata
from jumpstarter.utils.env import env

# Chunk size the original's clients typically use for bulk data.
CHUNK = 64 * 1024
# No single operation may hang the run.
OPERATION_TIMEOUT = 20


class Color(StrEnum):
    RED = "red"


class Level(IntEnum):
    HIGH = 3


class Point(BaseModel):
    x: int
    y: float


@dataclasses.dataclass
class Pair:
    a: int
    b: str


SAMPLES: dict[str, Any] = {
    "int": 5,
    "negative_int": -7,
    "big_int": 2**53 + 1,
    "inf": float("inf"),
    "nan": float("nan"),
    "bytes": b"abc",
    "tuple": (1, "two"),
    "set": {3},
    "int_keys": {1: "one"},
    "model": Point(x=1, y=2.5),
    "dataclass": Pair(a=1, b="x"),
    "uuid": UUID("12345678-1234-5678-1234-567812345678"),
    "datetime": datetime(2024, 1, 2, 3, 4, 5),
    "date": date(2024, 1, 2),
    "timedelta": timedelta(minutes=1, seconds=30),
    "decimal": Decimal("1.25"),
    "path": Path("/tmp/firmware.bin"),
    "str_enum": Color.RED,
    "int_enum": Level.HIGH,
}

COMPRESS = {
    None: lambda data: data,
    "gzip": gzip.compress,
    "xz": lzma.compress,
    "bz2": bz2.compress,
    "zstd": zstd.compress,
}


def argument(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"$sample"}:
        return SAMPLES[value["$sample"]]
    return value


def node(client: Any, path: list[str]) -> Any:
    for name in path:
        client = client.children[name]
    return client


def describe_tree(client: Any) -> dict[str, Any]:
    cls = type(client)
    return {
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "uuid": str(client.uuid),
        "labels": dict(client.labels),
        "description": client.description,
        "methods_description": dict(client.methods_description),
        "children": {name: describe_tree(child) for name, child in client.children.items()},
    }


class LocalData(ObjectStream[bytes]):
    """The local end of a resource: hands out `data` in chunks, keeps what the driver sends back."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self.received = bytearray()

    async def receive(self) -> bytes:
        if not self._data:
            raise anyio.EndOfStream
        chunk, self._data = self._data[:CHUNK], self._data[CHUNK:]
        return bytes(chunk)

    async def send(self, item: bytes) -> None:
        self.received += item

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


class Captured(logging.Handler):
    """Keeps the records the original client re-logs from the exporter's LogStream."""

    LOGGERS = ("exporter:driver", "exporter:system", "exporter:beforeLease", "exporter:afterLease")

    def __init__(self) -> None:
        super().__init__()
        self.records: list[list[str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append([record.name, record.levelname, record.getMessage()])

    def __enter__(self) -> Captured:
        for name in self.LOGGERS:
            logging.getLogger(name).addHandler(self)
            logging.getLogger(name).setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).removeHandler(self)


# -- operations (each returns JSON data) ---------------------------------------------------


def op_tree(root: Any, spec: dict[str, Any]) -> Any:
    return describe_tree(root)


async def op_report(root: Any, spec: dict[str, Any]) -> Any:
    response = await root.stub.GetReport(empty_pb2.Empty())
    return {
        "uuid": response.uuid,
        "labels": dict(response.labels),
        "reports": [
            {
                "uuid": entry.uuid,
                "parent_uuid": entry.parent_uuid if entry.HasField("parent_uuid") else None,
                "labels": dict(entry.labels),
                "description": entry.description if entry.HasField("description") else None,
                "methods_description": dict(entry.methods_description),
            }
            for entry in response.reports
        ],
    }


def op_call(root: Any, spec: dict[str, Any]) -> Any:
    result = node(root, spec.get("path", [])).call(spec["method"], *map(argument, spec.get("args", [])))
    return {"type": type(result).__name__, "value": result}


def op_streamingcall(root: Any, spec: dict[str, Any]) -> Any:
    client = node(root, spec.get("path", []))
    items, error = [], None
    try:
        for item in client.streamingcall(spec["method"], *map(argument, spec.get("args", []))):
            items.append(item)
    except Exception as exception:
        # The items that came before a failure matter too.
        error = describe_error(exception)
    return {"items": items, "types": sorted({type(item).__name__ for item in items}), "error": error}


async def op_stream(root: Any, spec: dict[str, Any]) -> Any:
    """Open an exportstream; send `size` bytes then EOF, and read until EOF, in the given `order`."""
    client = node(root, spec.get("path", []))
    data = payload(spec["size"])
    received = bytearray()
    async with client.stream_async(spec["method"]) as stream:

        async def send_all() -> None:
            for offset in range(0, len(data), CHUNK):
                await stream.send(data[offset : offset + CHUNK])
            await stream.send_eof()

        async def receive_all() -> None:
            while True:
                try:
                    received.extend(await stream.receive())
                except anyio.EndOfStream:
                    return

        match spec["order"]:
            case "concurrent":
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(send_all)
                    await receive_all()
            case "send_first":
                await send_all()
                await receive_all()
            case "receive_first":
                await receive_all()
                await send_all()
    return {
        "sent": len(data),
        "sent_sha256": sha256(data),
        "received": len(received),
        "received_sha256": sha256(bytes(received)),
        "received_head": bytes(received[:200]).decode(errors="replace"),
    }


async def op_upload(root: Any, spec: dict[str, Any]) -> Any:
    """resource_async() with `size` bytes (compressed as `encoding` declares), passed to `method`."""
    client = node(root, spec.get("path", []))
    raw = payload(spec["size"])
    local = LocalData(COMPRESS[spec.get("encoding")](raw))
    async with client.resource_async(local, spec.get("encoding")) as handle:
        result = await client.call_async(spec["method"], handle)
    return {"sent": len(raw), "sent_sha256": sha256(raw), "handle": handle, "result": result}


async def op_download(root: Any, spec: dict[str, Any]) -> Any:
    """resource_async() with an empty local end; `method(handle, size)` writes into it."""
    client = node(root, spec.get("path", []))
    local = LocalData(b"")
    async with client.resource_async(local) as handle:
        result = await client.call_async(spec["method"], handle, spec["size"])
    return {"received": len(local.received), "received_sha256": sha256(bytes(local.received)), "result": result}


async def op_resource_metadata(root: Any, spec: dict[str, Any]) -> Any:
    """The initial metadata of a resource stream, opened with the original's own request model."""
    client = node(root, spec.get("path", []))
    request = StreamRequestMetadata.model_construct(
        request=ResourceStreamRequest(uuid=client.uuid, x_jmp_content_encoding=spec.get("encoding"))
    ).model_dump(mode="json", round_trip=True)
    call = root.stub.Stream(metadata=list(request.items()))
    try:
        return dict(await call.initial_metadata())
    finally:
        call.cancel()


async def op_status(root: Any, spec: dict[str, Any]) -> Any:
    response = await root.stub.GetStatus(jumpstarter_pb2.GetStatusRequest())
    return {
        "status": common_pb2.ExporterStatus.Name(response.status),
        "has_message": response.HasField("message"),
        "message": response.message,
        "status_version": response.status_version,
        "previous_status": common_pb2.ExporterStatus.Name(response.previous_status)
        if response.HasField("previous_status")
        else None,
        "client_status": str(await root.get_status_async()),
    }


async def op_end_session(root: Any, spec: dict[str, Any]) -> Any:
    response = await root.stub.EndSession(jumpstarter_pb2.EndSessionRequest())
    return {
        "success": response.success,
        "has_message": response.HasField("message"),
        "message": response.message,
        "client_result": await root.end_session_async(),
    }


async def op_raw(root: Any, spec: dict[str, Any]) -> Any:
    """A bare RPC through the original's stub; returns its status code and details.

    Reset; a DriverCall on a made-up driver uuid; or a Stream opening `method` of `path`.
    """
    try:
        match spec["rpc"]:
            case "Reset":
                await root.stub.Reset(jumpstarter_pb2.ResetRequest())
            case "DriverCall":
                await root.stub.DriverCall(jumpstarter_pb2.DriverCallRequest(uuid=str(uuid4()), method="on"))
            case "Stream":
                request = StreamRequestMetadata.model_construct(
                    request=DriverStreamRequest(uuid=node(root, spec["path"]).uuid, method=spec["method"])
                ).model_dump(mode="json", round_trip=True)
                call = root.stub.Stream(metadata=list(request.items()))
                await call.read()
                call.cancel()
    except grpc.aio.AioRpcError as error:
        return {"code": error.code().name, "details": error.details()}
    return {"code": "OK"}


async def op_logs(root: Any, spec: dict[str, Any]) -> Any:
    """Open the log stream; call `method` until its marker comes back; return the records seen."""
    client = node(root, spec.get("path", []))
    marker = spec["args"][-1]
    with Captured() as captured:
        async with root.log_stream_async():
            with anyio.fail_after(15):
                # The original subscribes in the background: repeat until the record arrives.
                while not any(marker in message for _, _, message in captured.records):
                    await client.call_async(spec["method"], *spec["args"])
                    await anyio.sleep(0.1)
    return [record for record in captured.records if marker in record[2]]


async def op_log_records(root: Any, spec: dict[str, Any]) -> Any:
    """Read LogStream with the original's bare stub; call `method` until its marker arrives; return that record."""
    client = node(root, spec.get("path", []))
    marker = spec["args"][-1]
    call = root.stub.LogStream(empty_pb2.Empty())

    async def provoke() -> None:
        while True:
            await client.call_async(spec["method"], *spec["args"])
            await anyio.sleep(0.1)

    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(provoke)
            async for record in call:
                if marker in record.message:
                    tasks.cancel_scope.cancel()
                    return {
                        "uuid": record.uuid,
                        "severity": record.severity,
                        "message": record.message,
                        "source": common_pb2.LogSource.Name(record.source) if record.HasField("source") else None,
                    }
    finally:
        call.cancel()
    raise AssertionError("the log stream ended before the record arrived")


OPERATIONS = {
    "tree": op_tree,
    "report": op_report,
    "call": op_call,
    "streamingcall": op_streamingcall,
    "stream": op_stream,
    "upload": op_upload,
    "download": op_download,
    "resource_metadata": op_resource_metadata,
    "status": op_status,
    "end_session": op_end_session,
    "raw": op_raw,
    "logs": op_logs,
    "log_records": op_log_records,
}


async def _with_timeout(function: Any, root: Any, spec: dict[str, Any]) -> Any:
    with anyio.fail_after(OPERATION_TIMEOUT):
        return await function(root, spec)


def main() -> None:
    answer = take_stdout()
    operations = json.load(sys.stdin)
    outcomes: dict[str, Any] = {}
    with ExitStack() as stack:
        try:
            root = stack.enter_context(env())
        except Exception as error:
            send(answer, {"connect": describe_error(error)})
            return
        for spec in operations:
            # On a timeout, the test shows stderr's tail: the last operation named here is the one that hung.
            print(f"peer_client: {spec['id']}", file=sys.stderr, flush=True)
            function = OPERATIONS[spec["op"]]
            try:
                if inspect.iscoroutinefunction(function):
                    # The async API belongs to the client's event loop, behind its portal.
                    result = root.portal.call(_with_timeout, function, root, spec)
                else:
                    result = function(root, spec)
                outcomes[spec["id"]] = {"ok": True, "result": result}
            except Exception as error:
                outcomes[spec["id"]] = describe_error(error)
    send(answer, outcomes)


if __name__ == "__main__":
    main()
