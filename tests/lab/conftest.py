"""Fixtures of the tests of our exporter and client in a lab: real controller and exporter processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from jumpstarter.testing import Commands
from testsupport.lab_exporter import LabBench, start_lab_bench
from testsupport.lab_fixtures import commands, lab, lab_pycache

__all__ = ["bench", "commands", "lab", "lab_pycache"]


@pytest.fixture
def bench(commands: Commands, tmp_path: Path) -> LabBench:
    """A controller, client `alice` and our exporter `board1` (board=rpi4) serving a MockPower as ``power``."""
    return start_lab_bench(commands, tmp_path / "state")
