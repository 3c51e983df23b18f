"""Data and a stream that both sides of the interoperability tests use.

Imported by the tests (our python) and by the peer scripts (the original's python), so it
uses only the standard library and anyio, which both environments have.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from enum import Enum
from typing import Any

import anyio
from anyio.abc import ObjectStream


@dataclass
class Pair:
    """A dataclass sent as an argument or result: it travels as a JSON object."""

    a: int
    b: str


class Color(Enum):
    RED = "red"


def payload(size: int) -> bytes:
    """Deterministic pseudo-random bytes: both sides generate the same for a size."""
    return random.Random(size).randbytes(size)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def typed(value: Any) -> Any:
    """`value` with the type of every scalar spelled out, so that 5 and 5.0 compare different."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    return (type(value).__name__, value)


class DigestStream(ObjectStream[bytes]):
    """Reads the client's bytes; only after the client's EOF answers "<size> <sha256>", then ends."""

    def __init__(self) -> None:
        self.size = 0
        self.hash = hashlib.sha256()
        self.client_done = anyio.Event()
        self.answered = False

    async def send(self, item: bytes) -> None:
        self.size += len(item)
        self.hash.update(item)

    async def send_eof(self) -> None:
        self.client_done.set()

    async def receive(self) -> bytes:
        await self.client_done.wait()
        if self.answered:
            raise anyio.EndOfStream
        self.answered = True
        return f"{self.size} {self.hash.hexdigest()}".encode()

    async def aclose(self) -> None:
        self.client_done.set()
