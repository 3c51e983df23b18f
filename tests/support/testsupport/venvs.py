"""Running commands in fresh virtual environments, for the plugin tests (shared by conftest.py and the tests)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

# The check that the package index answers is the one of the original's environment (scripts/,
# on the tests' path).
from upstream_venv import index_reachable

# A build, an install or a script of these tests that takes longer than this has hung.
COMMAND_TIMEOUT = 120


class CommandFailed(AssertionError):
    """A command of a test failed; the message has its output."""


def clean_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without what would leak into a fresh venv or a client.

    No active venv or PYTHONPATH, no JMP_* settings, and a configuration home of its own
    (`home`) so that no user client configuration widens the allowed client classes.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "CONDA_PREFIX") and not key.startswith("JMP_")
    }
    env["XDG_CONFIG_HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def run(
    command: list[str | Path], *, cwd: Path | None = None, env: Mapping[str, str] | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run `command`; on failure (with `check`) raise CommandFailed with its output."""
    result = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=dict(env) if env is not None else None,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
    )
    if check and result.returncode != 0:
        raise CommandFailed(
            f"{' '.join(map(str, command))} exited with {result.returncode}\n"
            f"--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-4000:]}"
        )
    return result


@dataclass(frozen=True)
class Uv:
    """The uv binary, run with a clean environment; skips the test when the index is unreachable."""

    binary: str
    home: Path

    def __call__(self, *args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        try:
            return run([self.binary, *args], cwd=cwd, env=clean_env(self.home))
        except CommandFailed:
            if not index_reachable():
                command = " ".join(str(arg) for arg in args[:2])
                pytest.skip(f"the package index cannot be reached, and `uv {command}` needs it for dependencies")
            raise


@dataclass(frozen=True)
class Venv:
    """A fresh virtual environment."""

    path: Path
    home: Path  # its XDG_CONFIG_HOME: no client configuration

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def bin(self, name: str) -> Path:
        return self.path / "bin" / name

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return clean_env(self.home, extra)

    def run(
        self,
        *args: str | Path,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command of this environment (``python``, ``jmp``...) with a clean environment plus `env`."""
        return run([self.bin(str(args[0])), *args[1:]], cwd=cwd, env=self.env(env), check=check)
