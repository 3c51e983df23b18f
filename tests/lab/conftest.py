"""Fixtures of the client's lab tests: a real controller, a client config, and an exporter process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jumpstarter.testing import Commands
from testsupport.lab_exporter import LabBench, start_lab_bench


@pytest.fixture
def commands(tmp_path: Path) -> Iterator[Commands]:
    with Commands(tmp_path) as started:
        yield started


@pytest.fixture
def bench(commands: Commands, tmp_path: Path) -> LabBench:
    """A controller, client `alice` and one exporter `board1` (board=rpi4) serving a MockPower as ``power``."""
    return start_lab_bench(commands, tmp_path / "state")
