"""Mock lab drivers for the demo: a power switch and an echo port, each with its client."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from anyio import create_memory_object_stream
from anyio.streams.stapled import StapledObjectStream

from jumpstarter.client import DriverClient
from jumpstarter.driver import Driver, export, exportstream


@dataclass(kw_only=True)
class MockPower(Driver):
    """A power switch that remembers its state and reports a made-up reading."""

    voltage: float = 5.0
    on_current: float = 0.5
    state: bool = False

    @classmethod
    def client(cls) -> str:
        return "lab_drivers.PowerClient"

    @export
    def on(self) -> None:
        self.state = True
        self.logger.info("power on")

    @export
    def off(self) -> None:
        self.state = False
        self.logger.info("power off")

    @export
    def read(self, count: int = 3, interval: float = 0.1) -> Iterator[dict[str, float]]:
        for _ in range(count):
            yield {"voltage": self.voltage, "current": self.on_current if self.state else 0.0}
            time.sleep(interval)


class PowerClient(DriverClient):
    def on(self) -> None:
        self.call("on")

    def off(self) -> None:
        self.call("off")

    def read(self, count: int = 3) -> Iterator[dict[str, float]]:
        yield from self.streamingcall("read", count)


@dataclass(kw_only=True)
class EchoPort(Driver):
    """A byte stream that sends back what it receives, like a loopback cable."""

    @classmethod
    def client(cls) -> str:
        return "jumpstarter.client.DriverClient"

    @exportstream
    @asynccontextmanager
    async def connect(self) -> AsyncIterator[StapledObjectStream[bytes]]:
        send, receive = create_memory_object_stream[bytes](32)
        async with StapledObjectStream(send, receive) as stream:
            yield stream
