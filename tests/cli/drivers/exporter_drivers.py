"""Drivers for the tests of `jmp exporter run` (imported by the exporter processes through PYTHONPATH).

Their client is the core's `DriverClient`, so the test process needs none of this module.
"""

from __future__ import annotations

import hashlib
import os
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from anyio import create_memory_object_stream
from anyio.streams.stapled import StapledObjectStream

from jumpstarter.driver import Driver, export, exportstream


@dataclass(kw_only=True)
class Counter(Driver):
    """Counts calls; writes its lifecycle (``reset <n>``, ``close <n>``) to `journal`.

    The count starts at zero in each new driver, so a client sees whether two calls landed
    in one session.
    """

    journal: str
    count: int = 0

    @classmethod
    def client(cls) -> str:
        return "jumpstarter.client.DriverClient"

    def _note(self, event: str) -> None:
        with open(self.journal, "a") as file:
            file.write(f"{event} {os.getpid()}\n")

    def reset(self) -> None:
        self._note("reset")

    def close(self) -> None:
        self._note("close")

    @export
    def increment(self) -> int:
        self.count += 1
        return self.count

    @export
    def crash(self, kind: str) -> None:
        """Fail the way driver code sometimes does."""
        if kind == "exception":
            raise RuntimeError("the driver broke")
        if kind == "exit":
            raise SystemExit(3)
        if kind == "interrupt":
            raise KeyboardInterrupt

    @export
    async def crash_async(self) -> None:
        raise SystemExit(4)


@dataclass(kw_only=True)
class Echo(Driver):
    """A byte stream that sends back what it receives."""

    @classmethod
    def client(cls) -> str:
        return "jumpstarter.client.DriverClient"

    @exportstream
    @asynccontextmanager
    async def connect(self) -> AsyncIterator[StapledObjectStream[bytes]]:
        send, receive = create_memory_object_stream[bytes](32)
        async with StapledObjectStream(send, receive) as stream:
            yield stream


@dataclass(kw_only=True)
class LargeValues(Driver):
    """Takes and returns large bytes values (see tests/cli/test_large_values.py)."""

    @classmethod
    def client(cls) -> str:
        return "jumpstarter.client.DriverClient"

    @export
    def echo(self, data: bytes) -> bytes:
        return data

    @export
    def digest(self, data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    @export
    def make(self, size: int, seed: int) -> bytes:
        return seeded_bytes(size, seed)


def seeded_bytes(size: int, seed: int) -> bytes:
    """`size` bytes that depend on `seed`: a random block of an odd length, repeated (built in one allocation)."""
    block = random.Random(seed).randbytes((1 << 20) + 7)
    whole, rest = divmod(size, len(block))
    return b"".join([block] * whole + [block[:rest]])
