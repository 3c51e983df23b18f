"""What the power drivers and their client share: the reading, and the errors of missing features.

Imported by both sides, so it depends on nothing but the errors of `jumpstarter.common`
(which load no gRPC) and, once `PowerReading` is first used, pydantic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jumpstarter.common import DriverMethodNotImplemented

if TYPE_CHECKING:
    from jumpstarter_driver_power._reading import PowerReading

__all__ = ["MeasurementNotSupported", "PowerReading", "StateNotSupported"]


def __getattr__(name: str) -> Any:
    # PowerReading is a pydantic model: loaded on first use, so that a client that never reads
    # a measurement (`j power on`) does not import pydantic (a third of its start-up).
    if name == "PowerReading":
        from jumpstarter_driver_power._reading import PowerReading

        return PowerReading
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class MeasurementNotSupported(DriverMethodNotImplemented):
    """The power driver cannot measure voltage or current: its hardware does not.

    Drivers raise it from `read` with the reason as the message (never a made-up
    reading); `PowerClient.read` raises it too, naming the driver.
    """


class StateNotSupported(DriverMethodNotImplemented):
    """The power driver cannot tell whether the power is on: its hardware does not report it.

    Drivers raise it from `state` with the reason as the message; `PowerClient.state`
    raises it too, naming the driver.
    """
