"""A 256 MiB bytes argument and result between our client and `jmp exporter run`, both real processes.

Large bytes values travel beside their call (`jumpstarter.common.wire`, "bulk values"), so
that each side holds about one copy of a value: the exporter's peak resident memory
(VmHWM, read from /proc) stays within twice the value's size, and so does the client's
(beyond the value it already holds when it sends one).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from jumpstarter.testing import Commands, Process
from testsupport.large_values import call, peak_memory, start_exporter

MiB = 1 << 20
SIZE = 256 * MiB


@pytest.fixture
def exporter(commands: Commands, tmp_path: Path) -> Iterator[tuple[Process, str]]:
    """`jmp exporter run` serving a LargeValues driver as ``large``; its process and Unix socket."""
    yield start_exporter(commands, tmp_path)


@pytest.mark.timeout(300)
def test_a_256_mib_argument_and_result_within_twice_their_size_on_each_side(
    commands: Commands, exporter: tuple[Process, str]
) -> None:
    running, socket = exporter

    upload = call(commands, socket, "upload", SIZE)
    assert upload["exact"], "the driver received other bytes than were sent"
    assert upload["peak"] <= 2 * SIZE, f"the client peaked at {upload['peak'] / MiB:.0f} MiB"

    download = call(commands, socket, "download", SIZE)
    assert download["exact"], "the client received other bytes than the driver returned"
    assert download["peak"] <= 2 * SIZE, f"the client peaked at {download['peak'] / MiB:.0f} MiB"

    echo = call(commands, socket, "echo", SIZE)
    assert echo["exact"], "the echo came back different"
    # The client holds the value it sends and the one it receives: the call adds the second, plus
    # buffers in flight (1.25-1.31x of the value in loaded runs: the download's frames can overlap
    # the upload's last ones). In the message, as the plain path carries it, it would add 2x.
    added = echo["peak"] - echo["before"]
    assert added <= 1.5 * SIZE, f"the call added {added / MiB:.0f} MiB"

    exporter_peak = peak_memory(running.pid)
    assert exporter_peak <= 2 * SIZE, f"the exporter peaked at {exporter_peak / MiB:.0f} MiB"
    for figures in (upload, download, echo):
        assert figures["seconds"] < 60


def test_a_value_just_below_the_bulk_size_travels_in_the_call(
    commands: Commands, exporter: tuple[Process, str]
) -> None:
    from jumpstarter.common.protocol import BULK_MIN_BYTES

    _, socket = exporter
    for size in (BULK_MIN_BYTES - 1, BULK_MIN_BYTES):
        assert call(commands, socket, "echo", size)["exact"]
