"""Large bytes values between real processes: the tests' and the benchmark's exporter and client.

An exporter serving the `LargeValues` driver of tests/cli/drivers (``large``) on a Unix socket,
and tests/cli/large_values_client.py, a client process that makes one call with a value of a
given size and prints its figures (time, peak memory, whether the value arrived exact) as JSON.
Used by tests/cli/test_large_values.py and benchmarks/large_values.py.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from jumpstarter.testing import Commands, Process
from testsupport import SUPPORT

__all__ = ["CLIENT", "CONFIG", "DRIVERS", "call", "peak_memory", "start_exporter"]

DRIVERS = SUPPORT.parent / "cli" / "drivers"
"""What the exporter's and the client's PYTHONPATH need (`Commands(..., PYTHONPATH=str(DRIVERS))`)."""
CLIENT = SUPPORT.parent / "cli" / "large_values_client.py"
CONFIG = """\
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata:
  name: large-values
export:
  large:
    type: exporter_drivers.LargeValues
"""


def peak_memory(pid: int) -> int:
    """The peak resident memory (VmHWM) of process `pid`, in bytes."""
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB$", status, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no VmHWM for process {pid}: {status}")
    return int(match[1]) * 1024


def start_exporter(commands: Commands, directory: Path) -> tuple[Process, str]:
    """`jmp exporter run` serving ``large`` (its configuration and state in `directory`); it and its socket."""
    config = directory / "large-values.yaml"
    config.write_text(CONFIG)
    running = commands.start("jmp", "exporter", "run", "--config", config, XDG_STATE_HOME=str(directory / "state"))
    running.wait_for(lambda out, err: "serving on" in err)
    socket = re.search(r"serving on (/\S+)$", running.output()[1], re.MULTILINE)
    if socket is None:
        raise RuntimeError(f"the exporter did not say where it serves: {running.output()[1]}")
    return running, socket[1]


def call(commands: Commands, socket: str, operation: str, size: int, *, timeout: float = 120) -> dict[str, Any]:
    """One call (``upload``, ``download`` or ``echo``) of a `size`-byte value by a client process: its figures."""
    result = commands.run(sys.executable, CLIENT, socket, operation, str(size), "7", timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"the client failed: {result}")
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures
