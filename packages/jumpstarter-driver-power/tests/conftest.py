"""Fixtures of the power drivers' tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from testsupport.pdu import Pductl
from testsupport.pty import PseudoTerminal


@pytest.fixture
def pty() -> Iterator[PseudoTerminal]:
    terminal = PseudoTerminal(raw=False)  # as a new port is: the tests see what the driver sets
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
