"""The control socket of a lease's holder (`jumpstarter.client.holding`): real Unix sockets, in-process holders."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import anyio
import pytest

from jumpstarter.client.holding import ask_holder, hold_control
from jumpstarter.client.lab import LabError

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(60)]


@pytest.fixture(autouse=True)
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    return tmp_path / "jumpstarter" / "leases"


async def test_the_holder_extends_or_says_why_not(runtime_dir: Path) -> None:
    asked: list[float] = []

    async def extend(duration: float) -> None:
        if duration > 7200:
            raise LabError("the duration 2h46m40s exceeds the 2h that policy ci allows")
        asked.append(duration)

    assert await ask_holder("lease-1", 3600) is None  # nobody holds it here: extend at the controller
    async with hold_control("lease-1", extend):
        assert os.stat(runtime_dir).st_mode & 0o777 == 0o700
        assert await ask_holder("namespaces/default/leases/lease-1", 3600) == ""
        assert await ask_holder("lease-1", 10000) == "the duration 2h46m40s exceeds the 2h that policy ci allows"
        path = runtime_dir / "lease-1.sock"
        answer = await anyio.to_thread.run_sync(_raw, path, b"nonsense\n")
        assert answer == {"error": "a request to the lease's holder is one JSON line with a duration"}
    assert asked == [3600]
    assert not (runtime_dir / "lease-1.sock").exists()
    assert await ask_holder("lease-1", 3600) is None


async def test_a_socket_left_by_a_killed_holder_is_not_a_holder(runtime_dir: Path) -> None:
    async def extend(duration: float) -> None:
        raise AssertionError("not asked")

    os.makedirs(runtime_dir, mode=0o700)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(runtime_dir / "lease-2.sock"))
    stale.close()  # bound, never listening: as a holder killed with SIGKILL leaves it
    assert await ask_holder("lease-2", 3600) is None
    async with hold_control("lease-2", extend):  # a new holder takes the name over
        assert (runtime_dir / "lease-2.sock").is_socket()


def _raw(path: Path, request: bytes) -> object:
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(10)
        client.connect(str(path))
        client.sendall(request)
        return json.loads(client.makefile("rb").readline())
