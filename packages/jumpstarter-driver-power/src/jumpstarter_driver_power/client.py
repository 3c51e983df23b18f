"""`PowerClient`: drives any power driver of this package, or of the original jumpstarter 0.9.0.

Imports no driver code: this module runs in test processes, usually far from the hardware.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import click

from jumpstarter.client import DriverClient, DriverError, DriverMethodNotImplemented, JumpstarterException
from jumpstarter_driver_power.common import MeasurementNotSupported, StateNotSupported

if TYPE_CHECKING:
    from jumpstarter_driver_power.common import PowerReading

P = ParamSpec("P")
R = TypeVar("R")


class PowerClient(DriverClient):
    """Switch a device's power on and off, cycle it, and read what it draws.

    Every method has an async twin (`on_async`, `read_async`...) for code running on the
    client's event loop. `read` raises `MeasurementNotSupported` and `state` raises
    `StateNotSupported` (both `NotImplementedError`) when the driver's hardware cannot
    measure, or cannot report its state.
    """

    def on(self) -> None:
        """Switch the power on."""
        self.call("on")

    def off(self) -> None:
        """Switch the power off."""
        self.call("off")

    def cycle(self, wait: float = 2) -> None:
        """Switch the power off, wait `wait` seconds, switch it on."""
        _check_wait(wait)
        self.logger.info("power cycle: off, %g s, on", wait)
        self.off()
        time.sleep(wait)
        self.on()

    def read(self) -> Iterator[PowerReading]:
        """The readings of one measurement (usually one), as the driver takes them."""
        try:
            for item in self.streamingcall("read"):
                yield self._reading(item)
        except DriverMethodNotImplemented as error:
            raise self._cannot_measure(error) from error

    def state(self) -> bool:
        """Whether the power is on, as the hardware reports it."""
        try:
            return self._state(self.call("state"))
        except DriverMethodNotImplemented as error:
            raise self._cannot_tell(error) from error

    # -- async twins -------------------------------------------------------------------

    async def on_async(self) -> None:
        """Async twin of `on`."""
        await self.call_async("on")

    async def off_async(self) -> None:
        """Async twin of `off`."""
        await self.call_async("off")

    async def cycle_async(self, wait: float = 2) -> None:
        """Async twin of `cycle`."""
        _check_wait(wait)
        self.logger.info("power cycle: off, %g s, on", wait)
        await self.off_async()
        import anyio  # here: `j power on` starts without it

        await anyio.sleep(wait)
        await self.on_async()

    async def read_async(self) -> AsyncIterator[PowerReading]:
        """Async twin of `read`."""
        try:
            async for item in self.streamingcall_async("read"):
                yield self._reading(item)
        except DriverMethodNotImplemented as error:
            raise self._cannot_measure(error) from error

    async def state_async(self) -> bool:
        """Async twin of `state`."""
        try:
            return self._state(await self.call_async("state"))
        except DriverMethodNotImplemented as error:
            raise self._cannot_tell(error) from error

    # -- what the driver sent, and what it could not do ---------------------------------

    def _who(self) -> str:
        return f"power driver {self.name!r}" if self.name else "the power driver"

    def _reading(self, item: Any) -> PowerReading:
        # Here, not at import: pydantic is loaded by the first reading, not by `j power on`.
        from pydantic import ValidationError

        from jumpstarter_driver_power.common import PowerReading

        try:
            return PowerReading.model_validate(item)
        except ValidationError:
            raise DriverError(
                f"{self._who()} sent {item!r}, which is not a reading of the form {{'voltage': V, 'current': A}}"
            ) from None

    def _state(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise DriverError(f"{self._who()} answered {value!r} when asked whether the power is on: not true or false")
        return value

    def _cannot_measure(self, error: DriverMethodNotImplemented) -> MeasurementNotSupported:
        # A driver that cannot measure says why; a driver without `read` at all gets the core's message.
        return MeasurementNotSupported(f"{self._who()} cannot measure voltage or current: {error}")

    def _cannot_tell(self, error: DriverMethodNotImplemented) -> StateNotSupported:
        return StateNotSupported(f"{self._who()} cannot tell whether the power is on: {error}")

    # -- command line ------------------------------------------------------------------

    def cli(self) -> click.Group:
        """``j <name> on|off|cycle [--wait S]|read [--count N] [--interval S]|state``."""
        group = super().cli()

        @group.command()
        @_clean_errors
        def on() -> None:
            """Switch the power on."""
            self.on()
            click.echo("power on")

        @group.command()
        @_clean_errors
        def off() -> None:
            """Switch the power off."""
            self.off()
            click.echo("power off")

        @group.command()
        @click.option("--wait", "-w", type=_SECONDS, default=2.0, show_default=True, help="Seconds to stay off.")
        @_clean_errors
        def cycle(wait: float) -> None:
            """Switch the power off, wait, switch it on."""
            self.cycle(wait)
            click.echo(f"power cycled (off for {wait:g} s)")

        @group.command()
        @click.option(
            "--count",
            "-n",
            type=click.IntRange(min=0),
            default=1,
            show_default=True,
            help="Readings to print; 0 reads until interrupted.",
        )
        @click.option(
            "--interval", "-i", type=_SECONDS, default=1.0, show_default=True, help="Seconds between measurements."
        )
        @_clean_errors
        def read(count: int, interval: float) -> None:
            """Print voltage, current and apparent power, one reading per line."""
            for reading in self._readings(count, interval):
                click.echo(format_reading(reading))

        @group.command()
        @_clean_errors
        def state() -> None:
            """Print whether the power is on: on or off."""
            click.echo("on" if self.state() else "off")

        return group

    def _readings(self, count: int, interval: float) -> Iterator[PowerReading]:
        """`count` readings (0: endless), measuring again every `interval` seconds."""
        taken = 0
        while True:
            got = 0
            for reading in self.read():
                yield reading
                got += 1
                taken += 1
                if taken == count:
                    return  # leaving the loop closes the driver's stream too
            if not got:
                raise DriverError(f"{self._who()} returned no reading")
            time.sleep(interval)


def format_reading(reading: PowerReading) -> str:
    """One line for the command line, as the original prints it: ``voltage=5.0 V  current=2.0 A  ...``.

    The apparent power is rounded, so that 3.0 * 0.1 shows as 0.3 rather than 0.30000000000000004.
    """
    return (
        f"voltage={reading.voltage} V  current={reading.current} A  "
        f"apparent_power={round(reading.apparent_power, 6)} VA"
    )


# click.ParamType is generic from click 8.5 on; subscripting it would fail with the older click the core allows.
class _Seconds(click.ParamType):  # type: ignore[type-arg]
    """A number of seconds, 0 or more and finite (click's FloatRange lets nan through)."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            seconds = math.nan
        if not 0 <= seconds < math.inf:
            self.fail(f"{value!r} is not a number of seconds, 0 or more", param, ctx)
        return seconds


_SECONDS = _Seconds()


def _check_wait(wait: float) -> None:
    if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 <= wait < math.inf:
        raise ValueError(f"wait must be a number of seconds, 0 or more, not {wait!r}")


def _clean_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Report what a driver call raised as a one-line command-line error (exit code 1), not a traceback."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except JumpstarterException as error:
            raise click.ClickException(str(error)) from error

    return run
