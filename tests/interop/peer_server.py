"""Serves a driver tree with the ORIGINAL jumpstarter 0.9.0 exporter session.

Run with the original's python. Serves, on a Unix socket, a Composite root holding the
original's MockPower and EchoNetwork drivers, an alias (Proxy) of the power driver, a
nested Composite, and `Lab`: a driver written here with the original's API, whose client
class, jumpstarter.client.DriverClient, exists in both implementations.

Prints one JSON line, {"socket": path, "uuids": {dotted name: uuid}}, once it serves, then
serves until its stdin is closed.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.lowlevel
from interop_shared import DigestStream, payload
from jumpstarter_driver_composite.driver import Composite, Proxy
from jumpstarter_driver_network.driver import EchoNetwork
from jumpstarter_driver_power.driver import MockPower
from peer_io import send, take_stdout
from pydantic.dataclasses import dataclass

from jumpstarter.common import ExporterStatus
from jumpstarter.driver import Driver, export, exportstream
from jumpstarter.exporter import Session

EXCEPTIONS: dict[str, type[Exception]] = {
    "ValueError": ValueError,
    "NotImplementedError": NotImplementedError,
    "TimeoutError": TimeoutError,
    "ConnectionError": ConnectionError,
    "RuntimeError": RuntimeError,
}


class SparseStream(DigestStream):
    """Sends b"abc" and b"def" with empty chunks around them (empty DATA frames on the wire), then EOF."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks = [b"", b"abc", b"", b"", b"def", b""]

    async def receive(self) -> bytes:
        if not self.chunks:
            raise anyio.EndOfStream
        return self.chunks.pop(0)


@dataclass(kw_only=True)
class Lab(Driver):
    """Unary, streaming, failing, byte-stream and resource methods, as the original runs them."""

    calls: int = 0

    @classmethod
    def client(cls) -> str:
        return "jumpstarter.client.DriverClient"

    @export
    def echo(self, value: Any) -> Any:
        self.calls += 1
        return value

    @export
    def types(self, *values: Any) -> list[str]:
        self.calls += 1
        return [type(value).__name__ for value in values]

    @export
    def call_count(self) -> int:
        return self.calls

    @export
    async def add(self, a: Any, b: Any) -> Any:
        return a + b

    @export
    def count(self, n: float) -> Iterator[int]:
        yield from range(int(n))

    @export
    async def ticks(self, n: float) -> AsyncIterator[dict[str, int]]:
        for i in range(int(n)):
            await anyio.lowlevel.checkpoint()
            yield {"i": i}

    @export
    def fail(self, kind: str, message: str) -> None:
        raise EXCEPTIONS[kind](message)

    @export
    async def fail_after(self, items: float, kind: str) -> AsyncIterator[int]:
        for i in range(int(items)):
            yield i
        raise EXCEPTIONS[kind](f"stopped after {int(items)}")

    @export
    def log(self, message: str) -> None:
        self.logger.warning(message)

    @exportstream
    @asynccontextmanager
    async def digest(self) -> AsyncIterator[DigestStream]:
        yield DigestStream()

    @exportstream
    @asynccontextmanager
    async def sparse(self) -> AsyncIterator[SparseStream]:
        yield SparseStream()

    @export
    async def consume(self, handle: Any) -> dict[str, Any]:
        digest, size = hashlib.sha256(), 0
        async with self.resource(handle) as stream:
            async for chunk in stream:
                digest.update(chunk)
                size += len(chunk)
        return {"size": size, "sha256": digest.hexdigest()}

    @export
    def ignore(self, handle: Any) -> None:
        """Receives a handle and never opens it."""

    @export
    async def produce(self, handle: Any, size: float) -> dict[str, Any]:
        data = payload(int(size))
        async with self.resource(handle) as stream:
            for offset in range(0, len(data), 64 * 1024):
                await stream.send(data[offset : offset + 64 * 1024])
        return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def tree() -> Composite:
    return Composite(
        children={
            "power": MockPower(),
            "echo": EchoNetwork(),
            "lab": Lab(description="Interop lab"),
            "alias": Proxy(ref="power"),
            "group": Composite(children={"inner": MockPower(description="inner power")}),
        }
    )


def uuids(root: Composite) -> dict[str, str]:
    names = {"": str(root.uuid)}
    for name, child in root.children.items():
        target = child._proxy_target if isinstance(child, Proxy) else child
        names[name] = str(target.uuid)
        for inner, grandchild in child.children.items():
            names[f"{name}.{inner}"] = str(grandchild.uuid)
    return names


async def main() -> None:
    answer = take_stdout()
    root = tree()
    with Session(root_device=root) as session:
        async with session.serve_unix_async() as path:
            # As the original's own serve() does: a local session is ready for driver calls at once.
            session.update_status(ExporterStatus.LEASE_READY)
            send(answer, {"socket": str(path), "uuids": uuids(root)})
            # Serve until the test closes our stdin (or dies, which closes it too).
            await anyio.to_thread.run_sync(sys.stdin.read)


if __name__ == "__main__":
    anyio.run(main)
