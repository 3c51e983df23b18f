"""`PySerialClient`: the client of the serial drivers (`PySerial`, `LoopbackSerial`).

    with client.stream() as port:                  # the raw byte stream
        port.send(b"help\\n")

    with client.open(prompt="=> ") as console:     # a pexpect spawn over the same stream
        console.expect("Hit any key")
        console.send(" ")
        console.expect_exact("=> ")
        print(console.run("version"))

    client.send_break()                            # control, on the driver's open port
    client.set_dtr(False)

On the command line (``j``): ``console``, ``pipe``, ``break``, ``dtr``, ``rts``,
``baudrate`` and ``status``. This module imports neither pyserial nor the driver.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import TYPE_CHECKING, Any

from jumpstarter.client import DriverClient

if TYPE_CHECKING:
    import click

    from jumpstarter_driver_serial.console import SerialConsole


class PySerialClient(DriverClient):
    """A serial console: a byte stream, a pexpect console for scripts, and DTR, RTS, break and baud rate."""

    def open(
        self,
        *,
        timeout: float | None = 30,
        encoding: str | None = None,
        codec_errors: str = "strict",
        logfile: Any = None,
        maxread: int = 65536,
        searchwindowsize: int | None = None,
        linesep: str = "\n",
        prompt: str | None = None,
    ) -> SerialConsole:
        """Open the console as a pexpect spawn: `expect`, `send`, `sendline`, `run`...

        `timeout` is the default of `expect` in seconds; `encoding` makes it work in text
        (default: bytes, which also accepts str patterns); `logfile` receives everything read
        and sent (``logfile_read``, ``logfile_send`` on the console for one direction);
        `linesep` ends what `sendline` sends; `prompt` is the default prompt of `run`.

        The console holds the port until `close()` (or the end of a ``with`` block, or of
        the session). Opening it while another client holds the port raises
        DriverConnectionError ("port busy...").
        """
        from jumpstarter_driver_serial.console import SerialConsole

        console = SerialConsole(
            self,
            timeout=timeout,
            maxread=maxread,
            searchwindowsize=searchwindowsize,
            logfile=logfile,
            encoding=encoding,
            codec_errors=codec_errors,
            linesep=linesep,
            prompt=prompt,
        )
        self.stack.callback(console.close)  # closed with the client, if not before
        return console

    @contextmanager
    def pexpect(self, **options: Any) -> Iterator[SerialConsole]:
        """`open()` as a context manager: ``with client.pexpect() as console:``."""
        console = self.open(**options)
        try:
            yield console
        finally:
            console.close()

    # -- control -------------------------------------------------------------------------------

    def set_dtr(self, value: bool) -> None:
        """Assert (True) or release (False) DTR, on the driver's open port."""
        self.call("set_dtr", value)

    def set_rts(self, value: bool) -> None:
        """Assert (True) or release (False) RTS, on the driver's open port."""
        self.call("set_rts", value)

    def send_break(self, duration: float = 0.25) -> None:
        """Hold the line in the break condition for `duration` seconds."""
        self.call("send_break", duration)

    def set_baudrate(self, baudrate: int) -> None:
        """Change the baud rate of the port until the session ends."""
        self.call("set_baudrate", baudrate)

    def status(self) -> dict[str, Any]:
        """The port's settings and state: url, baudrate, framing ("8N1"), rtscts, xonxoff, cps, open, held_since."""
        status: dict[str, Any] = self.call("status")
        return status

    # -- command line --------------------------------------------------------------------------

    def cli(self) -> click.Group:
        import click

        from jumpstarter_driver_serial import _terminal

        group = super().cli()

        @group.command()
        @click.option(
            "--escape",
            default="^]",
            show_default=True,
            metavar="KEY",
            help="The key that leaves the console: ^ and a letter, or one of ^[ ^\\ ^] ^^ ^_ (^] is Ctrl-]).",
        )
        @_click_errors
        def console(escape: str) -> None:
            """Connect this terminal to the serial console, in raw mode; leave with the escape key (Ctrl-])."""
            code = _terminal.run_console(self, _terminal.parse_escape(escape))
            click.get_current_context().exit(code)

        @group.command()
        @click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write what the port sends to FILE.")
        @click.option("-a", "--append", is_flag=True, help="Append to --output instead of replacing it.")
        @click.option("--no-input", is_flag=True, help="Do not send standard input to the port, even when piped.")
        @click.option(
            "--no-output",
            is_flag=True,
            help="Only send standard input, and leave once it ends (for one-shot commands).",
        )
        @click.option("--until", metavar="REGEX", help="Stop once the output matches REGEX (a Python regex).")
        @click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Stop after SECONDS.")
        @_click_errors
        def pipe(
            output: str | None, append: bool, no_input: bool, no_output: bool, until: str | None, timeout: float | None
        ) -> None:
            """Copy the port to standard output (or --output FILE), and standard input to the port when it is piped.

            Runs until interrupted (Ctrl-C, SIGTERM), --timeout, a match of --until, or the
            end of the connection; everything received is written and flushed as it comes.
            With --until, not matching within --timeout is an error.
            """
            _terminal.run_pipe(
                self,
                output=output,
                append=append,
                send_input=not no_input,
                receive_output=not no_output,
                until=until,
                timeout=timeout,
            )

        @group.command(name="break")
        @click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=0.25, show_default=True)
        @_click_errors
        def break_(duration: float) -> None:
            """Send a break (held for --duration seconds)."""
            self.send_break(duration)

        @group.command()
        @click.argument("state", type=click.Choice(["on", "off"]))
        @_click_errors
        def dtr(state: str) -> None:
            """Assert (on) or release (off) DTR."""
            self.set_dtr(state == "on")

        @group.command()
        @click.argument("state", type=click.Choice(["on", "off"]))
        @_click_errors
        def rts(state: str) -> None:
            """Assert (on) or release (off) RTS."""
            self.set_rts(state == "on")

        @group.command()
        @click.argument("rate", type=click.IntRange(min=1))
        @_click_errors
        def baudrate(rate: int) -> None:
            """Change the baud rate (until the session ends)."""
            self.set_baudrate(rate)

        @group.command()
        @_click_errors
        def status() -> None:
            """Show the port's settings and whether a client holds it."""
            for key, value in self.status().items():
                click.echo(f"{key}: {'-' if value is None else value}")

        return group


def _click_errors(function: Callable[..., None]) -> Callable[..., None]:
    """Driver errors end a command with their message (click's "Error: ..."), not a traceback."""
    import click

    from jumpstarter.client import DriverError

    @wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            function(*args, **kwargs)
        except DriverError as error:
            raise click.ClickException(str(error)) from None

    return wrapper
