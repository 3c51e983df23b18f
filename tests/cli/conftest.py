"""Fixtures of the command-line tests: `jmp` and `j` run as real processes, always cleaned up.

Every process starts in a new session (its own process group, no controlling terminal); a
test's processes are killed, group and all, when it ends, and `run` fails a test whose
command leaves a process of its group behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from jumpstarter.driver import Driver
from jumpstarter.testing import serve_socket

DRIVERS_DIR = Path(__file__).resolve().parent / "drivers"
BIN_DIR = Path(sys.executable).parent
TIMEOUT = 30.0


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"exit {self.returncode}\n--- stdout\n{self.stdout}--- stderr\n{self.stderr}"


class Running:
    """A started process whose output goes to files (a pipe held by a stray child would hang the test)."""

    def __init__(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self._stdout: IO[str] = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed by kill()
        self._stderr: IO[str] = tempfile.TemporaryFile("w+")  # noqa: SIM115
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._stdout,
            stderr=self._stderr,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> tuple[str, str]:
        self._stdout.seek(0)
        self._stderr.seek(0)
        return self._stdout.read(), self._stderr.read()

    def wait_for(self, predicate: Callable[[str, str], bool], timeout: float = TIMEOUT) -> None:
        """Wait until `predicate(stdout, stderr)` holds."""
        deadline = time.monotonic() + timeout
        while not predicate(*self.output()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"never happened; exit {self.process.poll()}\n{self.output()}")
            time.sleep(0.02)

    def finish(self, timeout: float = TIMEOUT) -> Result:
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.process.args} did not finish in {timeout} s\n{self.output()}") from None
        _assert_group_gone(self.pid)
        return Result(self.process.returncode, *self.output())

    def kill(self) -> None:
        with suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait()
        self._stdout.close()
        self._stderr.close()


def _assert_group_gone(pgid: int, grace: float = 2.0) -> None:
    deadline = time.monotonic() + grace
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        if time.monotonic() > deadline:
            os.killpg(pgid, signal.SIGKILL)
            raise AssertionError(f"a process of the group {pgid} was left behind")
        time.sleep(0.02)


class Commands:
    """Starts `jmp`, `j`, python... with the test drivers importable and the venv's scripts on PATH."""

    def __init__(self, cwd: Path, pycache: Path) -> None:
        self.cwd = cwd
        self.pycache = pycache
        self.started: list[Running] = []

    def env(self, **extra: str | None) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = f"{BIN_DIR}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONPATH"] = str(DRIVERS_DIR)
        env.pop("NO_COLOR", None)
        # Compiled modules are kept for the test run (outside the repository): each process
        # starts as fast as it would from an installed package.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(self.pycache)
        for key, value in extra.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def start(self, *argv: str | Path, **env: str | None) -> Running:
        running = Running([str(part) for part in argv], self.env(**env), self.cwd)
        self.started.append(running)
        return running

    def run(self, *argv: str | Path, timeout: float = TIMEOUT, **env: str | None) -> Result:
        return self.start(*argv, **env).finish(timeout)

    def close(self) -> None:
        for running in self.started:
            running.kill()


@pytest.fixture(scope="session")
def pycache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pycache")


@pytest.fixture
def commands(tmp_path: Path, pycache: Path) -> Iterator[Commands]:
    for script in ("jmp", "j"):
        if not (BIN_DIR / script).exists():
            pytest.fail(f"{BIN_DIR / script} is missing: run `uv sync` to install jumpstarter-core's scripts")
    commands = Commands(tmp_path, pycache)
    yield commands
    commands.close()


CONFIG = """\
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata:
  name: bench-7
description: The bench with the blue cable
export:
  power:
    type: jmpcli_drivers.Power
    description: Main power of the board
    methods_description:
      "on": Turn the board on, firmly
    config:
      journal: {journal}
"""


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    """Where the test power driver writes `reset` and `close`."""
    return tmp_path / "journal.txt"


@pytest.fixture
def config(tmp_path: Path, journal: Path) -> Path:
    path = tmp_path / "exporter.yaml"
    path.write_text(CONFIG.format(journal=journal))
    return path


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text))
        return path

    return write


@pytest.fixture
def test_drivers(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The module of the test drivers, imported in this process."""
    monkeypatch.syspath_prepend(str(DRIVERS_DIR))
    import jmpcli_drivers

    return jmpcli_drivers


@pytest.fixture
def exporter() -> Callable[[Driver], Any]:
    """Serve a tree on a Unix socket from this process, as a running exporter would; yields the path."""

    return serve_socket
