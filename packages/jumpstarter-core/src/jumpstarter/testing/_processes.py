"""Real `jmp`, `j` (and other) processes for tests: a clean environment, and nothing left behind.

Every process starts in a session of its own (a new process group, no controlling
terminal), with its output in files: a pipe that a stray grandchild holds open would hang
the test. Leaving a `Commands` block kills every process group it started, and
`Process.finish` fails when the command left a process of its group running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from jumpstarter.config.env import (
    JMP_CLIENT,
    JMP_CLIENT_CONFIG,
    JMP_CLIENT_CONFIG_HOME,
    JMP_DRIVERS_ALLOW,
    JMP_DRIVERS_UNSAFE,
    JMP_ENDPOINT,
    JMP_GRPC_INSECURE,
    JMP_GRPC_PASSPHRASE,
    JMP_NAME,
    JMP_NAMESPACE,
    JMP_TLS_CA,
    JMP_TLS_SERVER_NAME,
    JMP_TOKEN,
    JUMPSTARTER_HOST,
)

# The environment's scripts (jmp, j): beside the python running the tests.
BIN = Path(sys.executable).parent
# How long a command may take before a test gives up on it: a bound for hangs, not a measure.
TIMEOUT = 30.0
# How long the processes a command started may outlive it (a shell's exporter closing its drivers).
GRACE = 2.0

# The user's settings that would point a process at another exporter, allow-list or credential.
_USER_SETTINGS = (
    JUMPSTARTER_HOST,
    JMP_CLIENT_CONFIG,
    JMP_CLIENT_CONFIG_HOME,
    JMP_CLIENT,
    JMP_ENDPOINT,
    JMP_NAMESPACE,
    JMP_NAME,
    JMP_DRIVERS_ALLOW,
    JMP_DRIVERS_UNSAFE,
    JMP_TOKEN,
    JMP_GRPC_PASSPHRASE,
    JMP_TLS_CA,
    JMP_TLS_SERVER_NAME,
    JMP_GRPC_INSECURE,
)

Argument = str | os.PathLike[str]


def jmp_environment(directory: Path, **extra: str | None) -> dict[str, str]:
    """This process's environment, made fit for a test's `jmp` or `j`.

    The environment's scripts come first on PATH; the user's exporter, allow-list, TLS and
    token settings are left out, and the client configuration is looked for under
    `directory` (``config/``), where there is none unless the test writes one. `extra`
    sets more variables, or removes them when None.
    """
    return _environment(directory, extra)


def _environment(directory: Path, extra: Mapping[str, str | None]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in _USER_SETTINGS}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["XDG_CONFIG_HOME"] = str(directory / "config")
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def jmp_shell_command(config: Argument, *command: Argument) -> list[str]:
    """The command line of ``jmp shell --exporter-config CONFIG -- COMMAND...``."""
    return [
        str(BIN / "jmp"),
        "shell",
        "--exporter-config",
        os.fspath(config),
        "--",
        *(os.fspath(part) for part in command),
    ]


@dataclass(frozen=True)
class CommandResult:
    """What a finished command printed, and its exit status."""

    returncode: int
    stdout: str
    stderr: str

    def sections(self) -> dict[str, list[str]]:
        """`sections` of stdout."""
        return sections(self.stdout)

    def __str__(self) -> str:
        return f"exit {self.returncode}\n--- stdout\n{self.stdout}--- stderr\n{self.stderr}"


def sections(text: str) -> dict[str, list[str]]:
    """The lines of `text` under each ``## NAME`` line, by NAME (lines before the first are dropped).

    A script that runs several steps prints ``echo '## NAME'`` before each (on stdout, or
    ``>&2`` on stderr), so that a test compares each step's output on its own.
    """
    found: dict[str, list[str]] = {}
    current: list[str] = []
    for line in text.splitlines():
        if line.startswith("## "):
            current = found.setdefault(line[3:], [])
        else:
            current.append(line)
    return found


class Process:
    """A command started in a session of its own; its stdout and stderr go to files unless given.

    `kill()` (or leaving a ``with`` block) kills its whole process group.
    """

    def __init__(
        self,
        argv: Sequence[Argument],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Argument | None = None,
        stdin: int | IO[Any] | None = subprocess.DEVNULL,
        stdout: int | IO[Any] | None = None,
        stderr: int | IO[Any] | None = None,
    ) -> None:
        self._files: list[IO[str]] = []
        self._stdout = self._capture() if stdout is None else None
        self._stderr = self._capture() if stderr is None else None
        try:
            self.process = subprocess.Popen(
                [os.fspath(part) for part in argv],
                stdin=stdin,
                stdout=self._stdout if self._stdout is not None else stdout,
                stderr=self._stderr if self._stderr is not None else stderr,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        except BaseException:
            self._close_files()
            raise

    def _capture(self) -> IO[str]:
        file = tempfile.TemporaryFile("w+", errors="replace")  # noqa: SIM115 - closed by kill()
        self._files.append(file)
        return file

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> tuple[str, str]:
        """What the command printed so far on stdout and stderr (empty for those it was given)."""
        return _read(self._stdout), _read(self._stderr)

    def wait_for(self, predicate: Callable[[str, str], bool], timeout: float = TIMEOUT) -> None:
        """Wait until `predicate(stdout, stderr)` holds; fail if the command exits first, or after `timeout`."""
        deadline = time.monotonic() + timeout
        while not predicate(*self.output()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"never happened; exit {self.process.poll()}\n{self.output()}")
            time.sleep(0.02)

    def finish(self, timeout: float = TIMEOUT) -> CommandResult:
        """Wait for the command to exit; fail if it takes longer than `timeout` or leaves a process of its group."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            output = self.output()
            self.kill()
            raise AssertionError(f"{self.process.args!r} did not finish in {timeout} s\n{output}") from None
        result = CommandResult(self.process.returncode, *self.output())
        if not group_gone(self.pid):
            self.kill()
            raise AssertionError(f"a process of the group of {self.process.args!r} was left behind\n{result}")
        return result

    def kill(self) -> None:
        """Kill whatever is left of the process group; close the output files."""
        with suppress(ProcessLookupError):  # nothing left in it
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait()
        self._close_files()

    def _close_files(self) -> None:
        for file in self._files:
            file.close()
        self._files.clear()

    def __enter__(self) -> Process:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc_value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.kill()


def group_gone(pgid: int, grace: float = GRACE) -> bool:
    """Whether the process group `pgid` is empty, waiting up to `grace` seconds for it to be."""
    deadline = time.monotonic() + grace
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


class Commands:
    """Starts the processes of one test in `directory`, with `jmp_environment`; kills them all on `close()`.

    `env` are variables of every process (None removes one); each call can add more.

        with Commands(tmp_path) as commands:
            result = commands.shell("exporter.yaml", "j", "power", "on")
            assert result.returncode == 0, result
    """

    def __init__(self, directory: Path, **env: str | None) -> None:
        self.directory = directory
        self._env = env
        self.started: list[Process] = []

    def env(self, **extra: str | None) -> dict[str, str]:
        """The environment of a process started with `extra`."""
        return _environment(self.directory, {**self._env, **extra})

    def start(
        self,
        *argv: Argument,
        cwd: Argument | None = None,
        stdin: int | IO[Any] | None = subprocess.DEVNULL,
        stdout: int | IO[Any] | None = None,
        stderr: int | IO[Any] | None = None,
        **env: str | None,
    ) -> Process:
        """Start `argv` (in `directory`, unless `cwd`)."""
        return self._start(argv, env, cwd=cwd, stdin=stdin, stdout=stdout, stderr=stderr)

    def run(self, *argv: Argument, timeout: float = TIMEOUT, **env: str | None) -> CommandResult:
        """Run `argv` to its end (see `Process.finish`)."""
        return self._start(argv, env).finish(timeout)

    def shell(self, config: Argument, *command: Argument, timeout: float = TIMEOUT, **env: str | None) -> CommandResult:
        """Run ``jmp shell --exporter-config CONFIG -- COMMAND...`` to its end."""
        return self._start(jmp_shell_command(config, *command), env).finish(timeout)

    def _start(
        self,
        argv: Sequence[Argument],
        env: Mapping[str, str | None],
        cwd: Argument | None = None,
        stdin: int | IO[Any] | None = subprocess.DEVNULL,
        stdout: int | IO[Any] | None = None,
        stderr: int | IO[Any] | None = None,
    ) -> Process:
        process = Process(
            argv,
            env=_environment(self.directory, {**self._env, **env}),
            cwd=self.directory if cwd is None else cwd,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
        )
        self.started.append(process)
        return process

    def close(self) -> None:
        """Kill every process group started here."""
        for process in self.started:
            process.kill()

    def __enter__(self) -> Commands:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc_value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


def _read(file: IO[str] | None) -> str:
    if file is None or file.closed:
        return ""
    file.seek(0)
    return file.read()
