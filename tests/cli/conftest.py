"""Fixtures of the command-line tests: `jmp` and `j` run as real processes, always cleaned up.

`commands` is `jumpstarter.testing.Commands` (what the pytest plugin's ``jumpstarter_commands``
fixture gives): every process starts in a new session (its own process group, no controlling
terminal); a test's processes are killed, group and all, when it ends, and `run` fails a test
whose command leaves a process of its group behind. The test drivers (tests/cli/drivers) are
importable in this process (the ``pythonpath`` option) and in the processes (PYTHONPATH), as
an installed driver package would be.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from jumpstarter.driver import Driver
from jumpstarter.testing import BIN, Commands, serve_socket

DRIVERS_DIR = Path(__file__).resolve().parent / "drivers"


@pytest.fixture(scope="session")
def pycache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pycache")


@pytest.fixture
def commands(tmp_path: Path, pycache: Path) -> Iterator[Commands]:
    for script in ("jmp", "j"):
        if not (BIN / script).exists():
            pytest.fail(f"{BIN / script} is missing: run `uv sync` to install jumpstarter-core's scripts")
    with Commands(
        tmp_path,
        PYTHONPATH=str(DRIVERS_DIR),
        NO_COLOR=None,
        # Compiled modules are kept for the test run (outside the repository): each process
        # starts as fast as it would from an installed package.
        PYTHONDONTWRITEBYTECODE=None,
        PYTHONPYCACHEPREFIX=str(pycache),
    ) as commands:
        yield commands


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
def test_drivers() -> Any:
    """The module of the test drivers, imported in this process."""
    import jmpcli_drivers

    return jmpcli_drivers


@pytest.fixture
def exporter() -> Callable[[Driver], Any]:
    """Serve a tree on a Unix socket from this process, as a running exporter would; yields the path."""

    return serve_socket
