"""`CommandPower`: power switched by commands that the exporter's configuration names.

For PDUs and power switches that come with a command-line tool (or an SNMP, IPMI or
vendor utility). Each command is a program and its arguments, run directly, never through
a shell; clients cannot change them (the driver's methods take no arguments). A command
that does not finish within `timeout` is killed, with the processes it started.

The methods are async: the commands run as anyio subprocesses, awaited on the exporter's
event loop without blocking it.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import signal
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import anyio
from anyio.abc import ByteReceiveStream, Process

from jumpstarter.driver import Driver, export
from jumpstarter_driver_power.common import MeasurementNotSupported, PowerReading, StateNotSupported
from jumpstarter_driver_power.driver import PowerInterface
from jumpstarter_driver_power.settings import check_seconds

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
DEFAULT_READ_PATTERN = rf"(?is)voltage\s*[=:]\s*(?P<voltage>{_NUMBER}).*?current\s*[=:]\s*(?P<current>{_NUMBER})"
_STATE_WORD = re.compile(r"\b(on|off)\b", re.IGNORECASE)
# How much of a command's output an error message quotes, and how much of it is kept at all.
_QUOTE = 300
_KEEP = 1 << 20

_COMMANDS = ("on_command", "off_command", "read_command", "state_command")


class CommandFailed(ConnectionError):
    """A configured command exited with an error status, or printed what the driver cannot use.

    A `ConnectionError` (clients get `DriverConnectionError`): the power switch behind the
    command is out of reach, or answered what the driver cannot use.
    """


@dataclass(kw_only=True)
class CommandPower(PowerInterface, Driver):
    """Power switched by commands run on the exporter, for PDUs with a command-line tool.

    Each command is a list of arguments, or a string split like a shell would split it
    (but never run by a shell). `read_command` (optional) prints readings that
    `read_pattern` picks up; `state_command` (optional) prints ``on`` or ``off``. Without
    them, `read` and `state` raise MeasurementNotSupported and StateNotSupported.
    """

    on_command: list[str] | str
    """Switches the power on."""
    off_command: list[str] | str
    """Switches the power off."""
    read_command: list[str] | str | None = None
    """Prints readings, for read()."""
    read_pattern: str = DEFAULT_READ_PATTERN
    """A regular expression with the named groups voltage and current; each match in the output is one reading."""
    state_command: list[str] | str | None = None
    """Prints the word on or off (as in "Chassis Power is on"), for state()."""
    timeout: float = 10.0
    """Seconds a command may run before it is killed."""
    cwd: str | None = None
    """The commands' working directory (default: the exporter's)."""
    env: dict[str, str] = field(default_factory=dict)
    """Environment variables added to the exporter's for the commands."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._argv = {
            setting: _argv(getattr(self, setting), setting)
            for setting in _COMMANDS
            if getattr(self, setting) is not None
        }
        try:
            self._pattern = re.compile(self.read_pattern)
        except (re.error, TypeError) as error:
            raise ValueError(f"read_pattern is not a regular expression: {error}") from None
        missing = {"voltage", "current"} - set(self._pattern.groupindex)
        if missing:
            raise ValueError(
                "read_pattern needs the named groups (?P<voltage>...) and (?P<current>...); "
                f"it lacks {' and '.join(sorted(missing))}"
            )
        check_seconds(self.timeout, "timeout")
        if not isinstance(self.env, dict) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in self.env.items()
        ):
            raise ValueError(f"env must map names to text values (quote numbers), not {self.env!r}")
        if self.cwd is not None and not isinstance(self.cwd, str):
            raise ValueError(f"cwd must be a directory, as text, not {self.cwd!r}")
        # One command at a time: two tools talking to one PDU at once may confuse it.
        self._lock = anyio.Lock()

    async def _run(self, setting: str) -> str:
        """Run a configured command; return what it printed on its standard output."""
        argv = self._argv[setting]
        shown = shlex.join(argv)
        async with self._lock:
            self.logger.info("%s: %s", setting, shown)
            process = await self._start(setting, argv)
            stdout, stderr = bytearray(), bytearray()
            finished = False
            try:
                with anyio.move_on_after(self.timeout) as deadline:
                    async with anyio.create_task_group() as tasks:
                        tasks.start_soon(_collect, process.stdout, stdout)
                        tasks.start_soon(_collect, process.stderr, stderr)
                    await process.wait()
                    finished = True
            finally:
                # Timed out or cancelled (the client went away): nothing the command started may outlive the call.
                if not finished:
                    await _kill(process)
                await process.aclose()
            if deadline.cancelled_caught:
                raise TimeoutError(f"{setting} `{shown}` did not finish within {self.timeout:g} s and was killed")
        out = stdout.decode(errors="replace")
        returncode = process.returncode
        assert returncode is not None  # the process was waited for, or killed and closed
        if returncode != 0:
            how = f"was killed by signal {-returncode}" if returncode < 0 else f"failed with exit status {returncode}"

            said = _tail(stderr.decode(errors="replace")) or _tail(out)
            raise CommandFailed(f"{setting} `{shown}` {how}" + (f": {said}" if said else " and printed nothing"))
        self.logger.debug("%s printed %r", setting, out)
        return out

    async def _start(self, setting: str, argv: list[str]) -> Process:
        try:
            return await anyio.open_process(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=self.cwd,
                env={**os.environ, **self.env} if self.env else None,
                start_new_session=True,  # its own process group, killed as a whole on timeout
            )
        except FileNotFoundError as error:
            if self.cwd is not None and error.filename == self.cwd:
                raise FileNotFoundError(
                    f"{setting} cannot start: its directory, cwd {self.cwd!r}, does not exist"
                ) from None
            where = "the exporter's PATH" if os.sep not in argv[0] else "that path"
            raise FileNotFoundError(f"{setting} cannot start: {argv[0]!r} is not found in {where}") from error
        except PermissionError as error:
            raise PermissionError(
                f"{setting} cannot start: {argv[0]!r} is not executable by the exporter's user"
            ) from error
        except OSError as error:
            raise OSError(f"{setting} `{shlex.join(argv)}` cannot start: {error}") from error

    @export
    async def on(self) -> None:
        await self._run("on_command")

    @export
    async def off(self) -> None:
        await self._run("off_command")

    @export
    async def read(self) -> AsyncIterator[PowerReading]:
        if "read_command" not in self._argv:
            raise MeasurementNotSupported("CommandPower has no read_command in its config")
        for reading in self._parse_readings(await self._run("read_command")):
            yield reading

    @export
    async def state(self) -> bool:
        if "state_command" not in self._argv:
            raise StateNotSupported("CommandPower has no state_command in its config")
        out = await self._run("state_command")
        words = {word.lower() for word in _STATE_WORD.findall(out)}
        if len(words) != 1:
            says = "both on and off" if words else "neither on nor off"
            raise CommandFailed(
                f"state_command printed {_tail(out) or 'nothing'!r}, which says {says}: "
                "it should print the word on or the word off"
            )
        return words == {"on"}

    def _parse_readings(self, out: str) -> list[PowerReading]:
        readings = []
        for match in self._pattern.finditer(out):
            try:
                voltage, current = float(match["voltage"]), float(match["current"])
            except (TypeError, ValueError):
                voltage = current = math.nan
            if not (math.isfinite(voltage) and math.isfinite(current)):
                raise CommandFailed(
                    f"read_pattern matched {_tail(match[0])!r} in the output of read_command, "
                    f"but its voltage {match['voltage']!r} or current {match['current']!r} is not a number"
                )
            readings.append(PowerReading(voltage=voltage, current=current))
        if not readings:
            raise CommandFailed(
                f"read_command printed {_tail(out) or 'nothing'!r}, where read_pattern finds no reading: "
                "fix read_pattern (a regular expression with the groups voltage and current)"
            )
        return readings


def _argv(value: object, setting: str) -> list[str]:
    """A command from the config as arguments: a list as it is, a string split like a shell would."""
    if isinstance(value, str):
        try:
            argv = shlex.split(value)
        except ValueError as error:
            raise ValueError(f"{setting} {value!r} cannot be split into arguments: {error}") from None
    elif isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        argv = list(value)
    else:
        raise ValueError(f"{setting} must be a list of arguments or a command line as text, not {value!r}")
    if not argv or not argv[0]:
        raise ValueError(f"{setting} is empty: name the program to run and its arguments")
    return argv


async def _collect(stream: ByteReceiveStream | None, into: bytearray) -> None:
    """Read a pipe to its end, keeping the first MiB (a runaway command must not fill the memory)."""
    if stream is None:
        return
    async for chunk in stream:
        if len(into) < _KEEP:
            into += chunk[: _KEEP - len(into)]


async def _kill(process: Process) -> None:
    """Kill the command's process group: the command and whatever it started (it may have exited already)."""
    with anyio.CancelScope(shield=True):  # runs while the call is being cancelled too
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            if process.returncode is None:
                process.kill()
        await process.wait()


def _tail(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _QUOTE else "..." + text[-_QUOTE:]
