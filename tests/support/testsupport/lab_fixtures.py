"""Fixtures shared by the lab's test folders (tests/controller, tests/lab): a conftest imports them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jumpstarter.testing import Commands
from testsupport.labcontroller import LabController

__all__ = ["commands", "lab"]


@pytest.fixture
def commands(tmp_path: Path) -> Iterator[Commands]:
    with Commands(tmp_path) as started:
        yield started


@pytest.fixture
def lab(commands: Commands, tmp_path: Path) -> LabController:
    """A real `jmp controller run` process (SQLite in its state directory)."""
    return LabController.start(commands, tmp_path / "state")
