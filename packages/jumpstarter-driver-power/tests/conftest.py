"""Fixtures of the power drivers' tests."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The test modules share the helpers that live beside this file (the fake pyusb backend...).
sys.path.insert(0, str(Path(__file__).parent))

from power_helpers import Pductl, PseudoTerminal


@pytest.fixture
def pty() -> Iterator[PseudoTerminal]:
    terminal = PseudoTerminal()
    try:
        yield terminal
    finally:
        terminal.close()


@pytest.fixture
def pductl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Pductl:
    """The fake PDU tool, first on the PATH."""
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ['PATH']}")
    return Pductl(directory)
