"""A 256 MiB bytes argument and result between our client and `jmp exporter run`, both real processes.

Large bytes values travel beside their call (`jumpstarter.common.wire`, "bulk values"), so
that each side holds about one copy of a value: the exporter's peak resident memory
(VmHWM, read from /proc) stays within twice the value's size, and so does the client's
(beyond the value it already holds when it sends one).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

MiB = 1 << 20
SIZE = 256 * MiB
CLIENT = Path(__file__).resolve().with_name("large_values_client.py")

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
    assert match, status
    return int(match[1]) * 1024


@pytest.fixture
def exporter(commands: Any, write: Callable[[str, str], Path], tmp_path: Path) -> Iterator[tuple[Any, str]]:
    """`jmp exporter run` serving a LargeValues driver as ``large``; its process and Unix socket."""
    config = write("large-values.yaml", CONFIG)
    running = commands.start("jmp", "exporter", "run", "--config", config, XDG_STATE_HOME=str(tmp_path / "state"))
    running.wait_for(lambda out, err: "serving on" in err)
    socket = re.search(r"serving on (/\S+)$", running.output()[1], re.MULTILINE)
    assert socket, running.output()[1]
    yield running, socket[1]


def run_client(commands: Any, socket: str, operation: str, size: int = SIZE) -> dict[str, Any]:
    result = commands.run(sys.executable, CLIENT, socket, operation, str(size), "7", timeout=120)
    assert result.returncode == 0, result
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


@pytest.mark.timeout(300)
def test_a_256_mib_argument_and_result_within_twice_their_size_on_each_side(
    commands: Any, exporter: tuple[Any, str]
) -> None:
    running, socket = exporter

    upload = run_client(commands, socket, "upload")
    assert upload["exact"], "the driver received other bytes than were sent"
    assert upload["peak"] <= 2 * SIZE, f"the client peaked at {upload['peak'] / MiB:.0f} MiB"

    download = run_client(commands, socket, "download")
    assert download["exact"], "the client received other bytes than the driver returned"
    assert download["peak"] <= 2 * SIZE, f"the client peaked at {download['peak'] / MiB:.0f} MiB"

    echo = run_client(commands, socket, "echo")
    assert echo["exact"], "the echo came back different"
    # The client holds the value it sends and the one it receives: the call adds the second.
    added = echo["peak"] - echo["before"]
    assert added <= 1.25 * SIZE, f"the call added {added / MiB:.0f} MiB"

    exporter_peak = peak_memory(running.pid)
    assert exporter_peak <= 2 * SIZE, f"the exporter peaked at {exporter_peak / MiB:.0f} MiB"
    for figures in (upload, download, echo):
        assert figures["seconds"] < 60


def test_a_value_just_below_the_bulk_size_travels_in_the_call(commands: Any, exporter: tuple[Any, str]) -> None:
    from jumpstarter.common.protocol import BULK_MIN_BYTES

    _, socket = exporter
    for size in (BULK_MIN_BYTES - 1, BULK_MIN_BYTES):
        assert run_client(commands, socket, "echo", size)["exact"]
