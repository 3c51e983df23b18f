"""The allocator thresholds that keep megabyte calls from mapping fresh pages (jumpstarter.common.allocator)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

# In a fresh interpreter: the thresholds are process-wide and set once.
_PROBE = (
    "import json, sys\n"
    "from jumpstarter.common.allocator import tune_allocator\n"
    "print(json.dumps([tune_allocator(), tune_allocator()]))\n"
)


def _probe(**environment: str) -> list[bool]:
    env = {key: value for key, value in os.environ.items() if key != "GLIBC_TUNABLES" and "MALLOC_" not in key}
    result = subprocess.run(
        [sys.executable, "-c", _PROBE], env={**env, **environment}, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    outcome: list[bool] = json.loads(result.stdout)
    return outcome


def _glibc() -> bool:
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError):
        return False


@pytest.mark.skipif(not _glibc(), reason="the thresholds are glibc's")
def test_the_thresholds_are_set_once_per_process() -> None:
    assert _probe() == [True, False]


def test_thresholds_the_environment_sets_are_left_alone() -> None:
    assert _probe(GLIBC_TUNABLES="glibc.malloc.trim_threshold=1048576") == [False, False]
    assert _probe(MALLOC_MMAP_THRESHOLD_="1048576") == [False, False]


@pytest.mark.skipif(not _glibc(), reason="the thresholds are glibc's")
def test_an_exporter_sets_them_and_megabytes_travel() -> None:
    code = (
        "import json\n"
        "import jumpstarter.common.allocator as allocator\n"
        "from jumpstarter.common.utils import serve\n"
        "from jumpstarter.driver import Driver, export\n"
        "class Echo(Driver):\n"
        "    @classmethod\n"
        "    def client(cls):\n"
        "        return 'jumpstarter.client.DriverClient'\n"
        "    @export\n"
        "    def echo(self, value: bytes) -> bytes:\n"
        "        return value\n"
        "with serve(Echo()) as client:\n"
        "    tuned = allocator._done\n"
        "    value = bytes(range(256)) * 8192\n"
        "    same = client.call('echo', value) == value\n"
        "print(json.dumps([tuned, same]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [True, True]
