"""Drivers and clients for the tests of `jmp shell` and `j` (imported by their subprocesses through PYTHONPATH)."""

from __future__ import annotations

from dataclasses import dataclass

import anyio
import click

from jumpstarter.client import DriverClient
from jumpstarter.driver import Driver, export


@dataclass(kw_only=True)
class Power(Driver):
    """A power switch that remembers its state, and writes its lifecycle to `journal`."""

    journal: str | None = None
    state: str = "off"
    broken: bool = False

    @classmethod
    def client(cls) -> str:
        return f"{__name__}.PowerClient"

    def _note(self, event: str) -> None:
        if self.journal:
            with open(self.journal, "a") as file:
                file.write(f"{event}\n")

    def reset(self) -> None:
        self._note("reset")
        if self.broken:
            raise OSError("the relay does not answer")
        self.logger.info("relay ready")

    def close(self) -> None:
        self._note("close")
        self.logger.info("relay released")

    @export
    def on(self) -> None:
        self.state = "on"
        self.logger.info("power is on")

    @export
    def read(self) -> str:
        return self.state

    @export
    def fail(self) -> None:
        raise RuntimeError("the relay is stuck")

    @export
    def warn(self, message: str) -> None:
        self.logger.warning(message)

    @export
    async def hang(self) -> None:
        self._note("hang")
        await anyio.sleep(60)  # cancelled when the client goes away


class PowerClient(DriverClient):
    """Switches the board's power."""

    def on(self) -> None:
        self.call("on")

    def state(self) -> str:
        return self.call("read")

    def cli(self) -> click.Group:
        group = super().cli()

        @group.command()
        def on() -> None:
            """Switch the power on."""
            self.on()
            click.echo("switched on")

        @group.command()
        def state() -> None:
            """Print whether the power is on."""
            click.echo(self.state())

        @group.command()
        def fail() -> None:
            """Ask the driver for something it cannot do."""
            self.call("fail")

        @group.command()
        @click.argument("message")
        def warn(message: str) -> None:
            """Make the driver log a warning."""
            self.call("warn", message)

        @group.command()
        def hang() -> None:
            """Wait for a long time."""
            self.call("hang")

        return group
