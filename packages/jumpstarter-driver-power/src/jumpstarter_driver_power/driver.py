"""The power interface, and the mock drivers that implement it without hardware.

`PowerInterface` is what every power driver of this package exports, and
`jumpstarter_driver_power.client.PowerClient` drives any of them (and the original
jumpstarter's power drivers). The drivers for real hardware live in their own modules:
`usbhub.UsbHubPower`, `usbrelay.UsbRelayPower`, `serialrelay.SerialRelayPower` and
`command.CommandPower`.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass

from jumpstarter.driver import Driver, export
from jumpstarter_driver_power.common import PowerReading, StateNotSupported


class PowerInterface(metaclass=ABCMeta):
    """Switches a device's power, and reads what it draws where the hardware can measure it.

    `on`, `off` and `read` are required. A driver whose hardware cannot measure implements
    `read` by raising `MeasurementNotSupported` with the reason, never with a made-up
    reading. `state` is optional: this default raises `StateNotSupported`; drivers whose
    hardware reports the state override it (with `@export`).
    """

    @classmethod
    def client(cls) -> str:
        return "jumpstarter_driver_power.client.PowerClient"

    # Each method may be a plain method (run in a worker thread) or an async one (run on the event loop).

    @abstractmethod
    def on(self) -> Awaitable[None] | None:
        """Switch the power on."""

    @abstractmethod
    def off(self) -> Awaitable[None] | None:
        """Switch the power off."""

    @abstractmethod
    def read(self) -> Iterator[PowerReading] | AsyncIterator[PowerReading]:
        """Yield the readings of one measurement (usually one)."""

    @export
    def state(self) -> bool | Awaitable[bool]:
        """Whether the power is on, as the hardware reports it."""
        raise StateNotSupported(f"{type(self).__name__} does not report whether the power is on")


@dataclass(kw_only=True)
class _MockSettings(Driver):
    """The settings and the remembered state of the two mocks."""

    voltage: float = 5.0
    """Volts read while on (0 while off)."""
    current: float = 2.0
    """Amperes read while on (0 while off)."""
    initially_on: bool = False
    """The state when a session starts."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._on = self.initially_on

    def reset(self) -> None:
        self._on = self.initially_on

    def _switch(self, on: bool) -> None:
        self._on = on
        self.logger.info("power %s", "on" if on else "off")

    def _reading(self) -> PowerReading:
        if self._on:
            return PowerReading(voltage=self.voltage, current=self.current)
        return PowerReading(voltage=0.0, current=0.0)


@dataclass(kw_only=True)
class MockPower(PowerInterface, _MockSettings):
    """A power switch without hardware (async methods): remembers its state, reads voltage and current while on."""

    @export
    async def on(self) -> None:
        self._switch(True)

    @export
    async def off(self) -> None:
        self._switch(False)

    @export
    async def state(self) -> bool:
        return self._on

    @export
    async def read(self) -> AsyncIterator[PowerReading]:
        yield self._reading()


@dataclass(kw_only=True)
class SyncMockPower(PowerInterface, _MockSettings):
    """`MockPower` with sync methods, which run in worker threads as most hardware drivers do."""

    @export
    def on(self) -> None:
        self._switch(True)

    @export
    def off(self) -> None:
        self._switch(False)

    @export
    def state(self) -> bool:
        return self._on

    @export
    def read(self) -> Iterator[PowerReading]:
        yield self._reading()
