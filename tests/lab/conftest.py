"""Fixtures of the tests of our exporter in a lab: a real `jmp controller run` process per test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from jumpstarter.testing import Commands
from testsupport.lab_exporter import LabBench, start_lab_bench
from testsupport.labcontroller import LabController


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    # One event loop for a module's tests: gRPC's asyncio poller keeps the loop it started on
    # while any gRPC object of it lives, and a new loop per test would find it closed.
    return "asyncio"


@pytest.fixture(scope="module")
async def one_event_loop(anyio_backend: str) -> AsyncIterator[None]:
    """Holds anyio's test runner (and its loop) for the whole module; async tests ask for it."""
    yield


@pytest.fixture
def commands(tmp_path: Path) -> Iterator[Commands]:
    with Commands(tmp_path) as started:
        yield started


@pytest.fixture
def lab(commands: Commands, tmp_path: Path) -> LabController:
    return LabController.start(commands, tmp_path / "state")


@pytest.fixture
def bench(commands: Commands, tmp_path: Path) -> LabBench:
    """A controller, client `alice` and our exporter `board1` (board=rpi4) serving a MockPower as ``power``."""
    return start_lab_bench(commands, tmp_path / "state")
