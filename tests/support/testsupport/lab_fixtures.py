"""Fixtures shared by the lab's test folders (tests/controller, tests/lab): a conftest imports them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jumpstarter.testing import Commands
from testsupport.labcontroller import LabController

__all__ = ["commands", "lab", "lab_pycache"]


@pytest.fixture(scope="session")
def lab_pycache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Beside the temporary directories of this run's workers: shared by them (Python writes its
    compiled files atomically), so that only the first lab process of the run compiles."""
    path = tmp_path_factory.getbasetemp().parent / "pycache"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture
def commands(tmp_path: Path, lab_pycache: Path) -> Iterator[Commands]:
    # The processes' compiled modules are kept for the test run (outside the repository), as in
    # tests/cli: where Python may not write bytecode (PYTHONDONTWRITEBYTECODE, as on this machine)
    # and uv installed none, each `jmp controller run` compiled sqlalchemy, grpc, hypercorn... again.
    with Commands(tmp_path, PYTHONDONTWRITEBYTECODE=None, PYTHONPYCACHEPREFIX=str(lab_pycache)) as started:
        yield started


@pytest.fixture
def lab(commands: Commands, tmp_path: Path) -> LabController:
    """A real `jmp controller run` process (SQLite in its state directory)."""
    return LabController.start(commands, tmp_path / "state")
