"""Benchmark this project against the original jumpstarter 0.9.0, side by side.

    uv run python benchmarks/run.py                   # both; JSON, then a markdown table
    uv run python benchmarks/run.py --json out.json   # also write the JSON to a file
    uv run python benchmarks/run.py --only ours       # one side only
    uv run python benchmarks/run.py --scale 0.1       # a quick check with fewer iterations
    uv run python benchmarks/run.py --rounds 4        # more alternations between the two sides

`bench_core.py` is run once under this project's python (the one running this script: the
workspace venv) and once under the original's, which lives in its own virtual environment
(`scripts/upstream_venv.py`) because both implementations use the import name `jumpstarter`.
The runs are sequential, never concurrent, so that they do not compete for the CPUs, and
they alternate (ours, the original, ours, the original: `--rounds`, each round with its
share of the iterations), so that a machine whose speed drifts (a shared or virtual one)
weighs on both sides alike; each figure is the median of its rounds.

In the table, **ratio = ours / original** for every figure: for times (µs, ms) lower is
better, for rates (items/s, MB/s, calls/s) higher is better. Targets are written on that
ratio, e.g. "<= 0.5x" for a time (ours takes at most half the original's) and ">= 25x"
for a rate.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).resolve().with_name("bench_core.py")
# One side takes about 20 s (ours) or 35 s (the original) on a 2-core machine; a hung run is stopped here.
SIDE_TIMEOUT = 240.0


@dataclass(frozen=True)
class Row:
    label: str
    figure: str  # the "figure" name bench_core.py emits
    key: str  # the value within it
    unit: str
    lower_is_better: bool
    target: float | None = None  # on the ratio ours/original: a maximum for times, a minimum for rates


ROWS = [
    Row("unary `ping` (sync), cross-process, median", "unary_ping_cross_process", "median_us", "µs", True, 0.5),
    Row("unary `ping` (sync), cross-process, p99", "unary_ping_cross_process", "p99_us", "µs", True),
    Row("unary `aping` (async), cross-process, median", "unary_aping_cross_process", "median_us", "µs", True, 0.5),
    Row("unary `aping` (async), cross-process, p99", "unary_aping_cross_process", "p99_us", "µs", True),
    Row("unary `ping` (sync), in-process serve(), median", "unary_ping_in_process", "median_us", "µs", True),
    Row("unary `ping` (sync), in-process serve(), p99", "unary_ping_in_process", "p99_us", "µs", True),
    Row("unary `aping` (async), in-process serve(), median", "unary_aping_in_process", "median_us", "µs", True),
    Row("unary `aping` (async), in-process serve(), p99", "unary_aping_in_process", "p99_us", "µs", True),
    Row("1 MiB `echo` call, cross-process, median", "call_1mib_cross_process", "median_ms", "ms", True, 0.4),
    Row("1 MiB `echo` call, bytes (ours only), median", "call_1mib_bytes_cross_process", "median_ms", "ms", True),
    Row("streamingcall `count` (sync gen.)", "streaming_count_cross_process", "items_per_s", "items/s", False, 25),
    Row("streamingcall `acount` (async gen.)", "streaming_acount_cross_process", "items_per_s", "items/s", False, 25),
    Row("exportstream echo, 64 KiB chunks", "exportstream_cross_process", "mb_per_s", "MB/s", False, 3),
    Row("`ping` (sync) from 8 threads, one client", "threads8_ping_cross_process", "calls_per_s", "calls/s", False, 2),
    Row(
        "`aping` (async) from 8 threads, one client", "threads8_aping_cross_process", "calls_per_s", "calls/s", False, 2
    ),
    Row("import driver + client + common.utils + exporter", "import_serve_and_call", "median_ms", "ms", True, 0.3),
    Row("import jumpstarter.driver", "import_driver", "median_ms", "ms", True),
    Row("`j power on`, whole process, with bytecode, median", "j_power_on", "bytecode_median_ms", "ms", True),
    Row(
        "`j power on`, PYTHONDONTWRITEBYTECODE, compiled at install, median",
        "j_power_on",
        "installed_median_ms",
        "ms",
        True,
    ),
    Row(
        "`j power on`, PYTHONDONTWRITEBYTECODE, our modules never compiled, median",
        "j_power_on",
        "no_bytecode_median_ms",
        "ms",
        True,
    ),
    Row("`j power on`, CPU time, with bytecode, median", "j_power_on", "bytecode_cpu_median_ms", "ms", True),
    Row("`j power on`, CPU time, compiled at install, median", "j_power_on", "installed_cpu_median_ms", "ms", True),
    Row("`j power on`, CPU time, never compiled, median", "j_power_on", "no_bytecode_cpu_median_ms", "ms", True),
    Row("serve() start-up, to a ready client", "serve_startup", "startup_median_ms", "ms", True),
    Row("serve() teardown", "serve_startup", "teardown_median_ms", "ms", True),
    Row("bare gRPC round trip (no jumpstarter), median", "bare_grpc_unary", "median_us", "µs", True),
    Row("bare gRPC round trip (no jumpstarter), p99", "bare_grpc_unary", "p99_us", "µs", True),
    Row("bare gRPC 1 MiB echo (no jumpstarter), median", "bare_grpc_1mib", "median_ms", "ms", True),
    Row("bare gRPC, 8 threads (no jumpstarter)", "bare_grpc_threads8", "calls_per_s", "calls/s", False),
]


@dataclass(frozen=True)
class FloorRow:
    """A figure of ours against the bare gRPC floor measured beside it (in alternating rounds)."""

    label: str
    figure: str
    floor: str  # the bare gRPC figure it is compared with
    key: str
    lower_is_better: bool
    target: float  # on the ratio ours/floor


FLOOR_ROWS = [
    FloorRow("unary `ping` (sync)", "unary_ping_cross_process", "bare_grpc_unary", "median_us", True, 1.2),
    FloorRow("unary `aping` (async)", "unary_aping_cross_process", "bare_grpc_unary", "median_us", True, 1.1),
    FloorRow("1 MiB `echo`, str", "call_1mib_cross_process", "bare_grpc_1mib", "median_ms", True, 1.3),
    FloorRow("1 MiB `echo`, bytes", "call_1mib_bytes_cross_process", "bare_grpc_1mib", "median_ms", True, 1.3),
    FloorRow("`ping` from 8 threads", "threads8_ping_cross_process", "bare_grpc_threads8", "calls_per_s", False, 0.9),
    FloorRow("`aping` from 8 threads", "threads8_aping_cross_process", "bare_grpc_threads8", "calls_per_s", False, 0.9),
]


def floor_table(ours: dict[str, Any] | None) -> str:
    """Ours against bare gRPC between the same two processes: how close to the floor."""
    lines = [
        "| figure, against bare gRPC | ours | bare gRPC | ratio (ours/bare) | target | pass |",
        "|---|--:|--:|--:|--:|:-:|",
    ]
    figures = (ours or {}).get("figures", {})
    for row in FLOOR_ROWS:
        mine = figures.get(row.figure, {}).get(row.key)
        floor = figures.get(row.floor, {}).get(row.key)
        if not isinstance(mine, (int, float)) or not isinstance(floor, (int, float)) or not floor:
            lines.append(f"| {row.label} | — | — | — | | |")
            continue
        ratio = mine / floor
        passed = ratio <= row.target if row.lower_is_better else ratio >= row.target
        unit = {"median_us": "µs", "median_ms": "ms", "calls_per_s": "calls/s"}[row.key]
        lines.append(
            f"| {row.label} | {_format_value(mine, unit)} | {_format_value(floor, unit)} | {ratio:.2f}x "
            f"| {'<=' if row.lower_is_better else '>='} {row.target}x | {'pass' if passed else '**FAIL**'} |"
        )
    return "\n".join(lines)


# -- running one side -------------------------------------------------------------------


def _stop_group(process: subprocess.Popen[str]) -> None:
    """Stop the benchmark and its exporter: they run in their own process group, led by `process`.

    Waits until the whole group is gone, not just its leader: on SIGTERM the exporter first
    stops its server and removes its socket.
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        deadline = time.monotonic() + 5.0
        try:
            os.killpg(process.pid, sig)
            while time.monotonic() < deadline:
                process.poll()  # reap the leader: a zombie still counts as a member of the group
                os.killpg(process.pid, 0)  # raises ProcessLookupError once no member is left
                time.sleep(0.05)
        except ProcessLookupError:
            return


def run_side(python: str, expected: str, scale: float) -> dict[str, Any]:
    """Run bench_core.py under `python`; return its figures (those it got to, if it failed)."""
    print(f"== {expected}: {python} {BENCH.name}", file=sys.stderr, flush=True)
    # A new session (process group), so that a timeout or Ctrl-C here stops the exporter
    # process too. stderr passes through: it shows progress.
    process = subprocess.Popen(
        [python, str(BENCH), "--scale", str(scale)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,
    )
    error = None
    try:
        stdout, _ = process.communicate(timeout=SIDE_TIMEOUT)
    except subprocess.TimeoutExpired:
        _stop_group(process)
        stdout, _ = process.communicate()
        error = f"timed out after {SIDE_TIMEOUT:.0f} s"
    finally:
        if process.poll() is None:  # interrupted (Ctrl-C): leave nothing running
            _stop_group(process)
    side: dict[str, Any] = {"figures": {}}
    done = False
    for line in stdout.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # not ours: a stray print
        if "figure" in record:
            side["figures"][record.pop("figure")] = record
        elif record.get("done"):
            done = True
            side.update((key, value) for key, value in record.items() if key != "done")
        else:
            side.update(record)
    if error is None and not done:
        error = f"bench_core.py exited with code {process.returncode} before it finished"
        if "implementation" not in side:
            error += f" (can {python} import jumpstarter? run this script with `uv run python`)"
    if error is None and side.get("implementation") != expected:
        error = f"{python} runs the {side.get('implementation')!r} implementation, not {expected!r}"
    if error:
        side["error"] = error
        print(f"== {expected}: {error}", file=sys.stderr, flush=True)
    return side


def original_python() -> tuple[str | None, str | None]:
    """The python of the original's environment, or None and the reason it is unavailable."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from upstream_venv import UpstreamUnavailable, ensure_upstream_venv

    try:
        return str(ensure_upstream_venv()), None
    except UpstreamUnavailable as error:
        return None, f"the original jumpstarter 0.9.0 cannot be installed: {error}"
    except RuntimeError as error:
        return None, f"installing the original jumpstarter 0.9.0 failed: {error}"


# Keys of a figure that count what was measured: added up over the rounds (the others are medians).
_COUNTS = frozenset({"calls", "runs", "items", "bytes", "figures"})


def merge_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One side's figures from its rounds: each value the median of the rounds' (counts added up)."""
    merged: dict[str, Any] = {"figures": {}, "rounds": len(rounds)}
    for side in rounds:
        for key, value in side.items():
            if key != "figures":
                merged.setdefault(key, value)  # the first round's version, python, load at start...
    merged["seconds"] = round(sum(float(side.get("seconds", 0)) for side in rounds), 1)
    merged["loadavg_end"] = rounds[-1].get("loadavg_end")
    errors = [side["error"] for side in rounds if "error" in side]
    if errors:
        merged["error"] = "; ".join(errors)
    names = dict.fromkeys(name for side in rounds for name in side["figures"])
    for name in names:
        records = [side["figures"][name] for side in rounds if name in side["figures"]]
        figure: dict[str, Any] = {}
        for key in dict.fromkeys(key for record in records for key in record):
            values = [record[key] for record in records if key in record]
            numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
            if len(numbers) != len(values):
                figure[key] = values[0]  # text (an error, a module list): the first round's
            elif key in _COUNTS:
                figure[key] = sum(numbers)
            else:
                median = statistics.median(numbers)
                figure[key] = round(median, 3) if isinstance(median, float) else median
        merged["figures"][name] = figure
    return merged


# -- comparing --------------------------------------------------------------------------


def _value(side: dict[str, Any] | None, row: Row) -> float | None:
    if side is None:
        return None
    value = side["figures"].get(row.figure, {}).get(row.key)
    return float(value) if isinstance(value, (int, float)) else None


def compare(ours: dict[str, Any] | None, original: dict[str, Any] | None) -> list[dict[str, Any]]:
    rows = []
    for row in ROWS:
        mine, theirs = _value(ours, row), _value(original, row)
        ratio = mine / theirs if mine is not None and theirs else None
        passed = None
        if row.target is not None and ratio is not None:
            passed = ratio <= row.target if row.lower_is_better else ratio >= row.target
        rows.append(
            {
                "figure": row.label,
                "unit": row.unit,
                "ours": mine,
                "original": theirs,
                "ratio": None if ratio is None else round(ratio, 3),
                "target": None if row.target is None else ("<= " if row.lower_is_better else ">= ") + f"{row.target}x",
                "pass": passed,
            }
        )
    return rows


def _format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "—"
    if value >= 100:
        text = f"{value:,.0f}"
    elif value >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit}"


def _format_ratio(ratio: float | None) -> str:
    if ratio is None:
        return "—"
    return f"{ratio:.1f}x" if ratio >= 10 else f"{ratio:.2f}x"


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| figure | ours | original 0.9.0 | ratio (ours/original) | target | pass |",
        "|---|--:|--:|--:|--:|:-:|",
    ]
    for row in rows:
        verdict = {True: "pass", False: "**FAIL**", None: ""}[row["pass"]]
        lines.append(
            f"| {row['figure']} | {_format_value(row['ours'], row['unit'])} "
            f"| {_format_value(row['original'], row['unit'])} | {_format_ratio(row['ratio'])} "
            f"| {row['target'] or ''} | {verdict} |"
        )
    judged = [row["pass"] for row in rows if row["pass"] is not None]
    lines.append("")
    lines.append(
        "ratio = ours / original: lower is better for times (µs, ms), higher for rates (items/s, MB/s, calls/s)."
    )
    if judged:
        lines.append(f"Targets met: {sum(judged)} of {len(judged)}.")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", metavar="FILE", type=Path, help="also write the combined JSON to FILE")
    parser.add_argument("--only", choices=("ours", "original"), help="run one implementation only")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply the iteration counts (e.g. 0.1 for a quick check)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="runs of each side, alternating, each with 1/ROUNDS of the iterations (default 2)",
    )
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    result: dict[str, Any] = {"ratio": "ours / original", "ours": None, "original": None}
    # This script is run with the workspace venv's python (uv run python), which has this project.
    pythons = {"ours": sys.executable} if args.only != "original" else {}
    if args.only != "ours":
        python, unavailable = original_python()
        if python is None:
            print(f"== original: {unavailable}; benchmarking ours alone", file=sys.stderr, flush=True)
            result["original_unavailable"] = unavailable
        else:
            pythons["original"] = python
    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in pythons}
    for number in range(args.rounds):
        for name, python in pythons.items():
            print(f"== round {number + 1} of {args.rounds}", file=sys.stderr, flush=True)
            rounds[name].append(run_side(python, name, args.scale / args.rounds))
    for name, sides in rounds.items():
        result[name] = merge_rounds(sides)
    result["comparison"] = compare(result["ours"], result["original"])

    text = json.dumps(result, indent=2, ensure_ascii=False)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    print()
    if "original_unavailable" in result:
        print(f"> {result['original_unavailable']}: only this project was measured.\n")
    print(table(result["comparison"]))
    if result["ours"] is not None:
        print()
        print(floor_table(result["ours"]))
        print()
    for name in ("ours", "original"):
        side = result[name]
        if side is not None:
            print(
                f"{name}: {side.get('seconds', '?')} s, load average (1 min) {side.get('loadavg_start', '?')} "
                f"at start, {side.get('loadavg_end', '?')} at end, {side.get('cpus', '?')} CPUs"
                + (f"; ERROR: {side['error']}" if "error" in side else "")
            )
    failed = any(side and "error" in side for side in (result["ours"], result["original"]))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
