"""Large bytes values: the time and peak memory of a 64 MiB and a 256 MiB argument and result.

    uv run python benchmarks/large_values.py             # a markdown table, then JSON
    uv run python benchmarks/large_values.py --sizes 64  # some sizes only (MiB)

Each figure is one call between two real processes on this machine: a fresh
`jmp exporter run` serving the tests' `LargeValues` driver (tests/cli/drivers) on a Unix
socket, and a client process (tests/cli/large_values_client.py, the one the memory test
runs). ``upload`` sends the value to `digest()`, ``download`` receives it from `make()`,
``echo`` does both. Peak memory is each process's VmHWM (from /proc), for the whole
process; the client's includes the value it sends.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from jumpstarter.testing import Commands

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))

from testsupport.large_values import DRIVERS, call, peak_memory, start_exporter  # noqa: E402

OPERATIONS = ("upload", "download", "echo")
MiB = 1 << 20


def measure(directory: Path, operation: str, size: int) -> dict[str, Any]:
    """One call of `operation` with a `size`-byte value, against a fresh exporter."""
    with Commands(directory, PYTHONPATH=str(DRIVERS)) as commands:
        exporter, socket = start_exporter(commands, directory)
        figures = call(commands, socket, operation, size, timeout=300)
        exporter_peak = peak_memory(exporter.pid)
    if not figures["exact"]:
        raise RuntimeError(f"{operation} of {size} bytes: the value arrived different")
    return {
        "operation": operation,
        "size_mib": size // MiB,
        "seconds": round(figures["seconds"], 3),
        "mb_per_s": round(size / figures["seconds"] / 1e6 * (2 if operation == "echo" else 1)),
        "client_peak_mib": round(figures["peak"] / MiB),
        "exporter_peak_mib": round(exporter_peak / MiB),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256], help="value sizes in MiB")
    arguments = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-large-") as directory:
        for size in arguments.sizes:
            for operation in OPERATIONS:
                rows.append(measure(Path(directory), operation, size * MiB))
    print("| value | call | seconds | MB/s | client peak (MiB) | exporter peak (MiB) |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['size_mib']} MiB | {row['operation']} | {row['seconds']} | {row['mb_per_s']} "
            f"| {row['client_peak_mib']} | {row['exporter_peak_mib']} |"
        )
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
