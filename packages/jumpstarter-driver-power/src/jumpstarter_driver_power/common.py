"""What the power drivers and their client share: the reading, and the errors of missing features.

Imported by both sides, so it depends on nothing but pydantic and the errors of
`jumpstarter.common` (which load no gRPC).
"""

from __future__ import annotations

from pydantic import BaseModel

from jumpstarter.common import DriverMethodNotImplemented


class PowerReading(BaseModel):
    """One measurement of what a device draws: `voltage` in volts, `current` in amperes.

    It travels between driver and client as ``{"voltage": ..., "current": ...}``, as in the
    original jumpstarter; the client validates it back into a `PowerReading`.
    """

    voltage: float
    current: float

    @property
    def apparent_power(self) -> float:
        """Volts times amperes: the apparent power, in volt-amperes."""
        return self.voltage * self.current


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
