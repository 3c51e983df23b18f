"""`PowerReading`, the pydantic model behind `jumpstarter_driver_power.common.PowerReading`.

Apart from the errors, so that a client that never reads (``j power on``) loads no pydantic.
"""

from __future__ import annotations

from pydantic import BaseModel


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


# Shown, documented and pickled under the name users import it by.
PowerReading.__module__ = "jumpstarter_driver_power.common"
