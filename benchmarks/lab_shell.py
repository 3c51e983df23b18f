"""Figures of leasing through the lab controller: `jmp shell --selector` end to end, and hand-over.

    uv run python benchmarks/lab_shell.py              # prints a markdown table
    uv run python benchmarks/lab_shell.py --scale 0.05 # a quick check

A real controller (`jmp controller run`, with its built-in router) and our exporter
(`jmp exporter run`, a MockPower behind the router), both on loopback with TLS:

- `jmp shell --selector board=rpi4 -- true`: wall time of the whole command (start, lease,
  Dial, router stream, the exporter's report, release, exit); p50 and p90;
- hand-over: a client waits for the exporter another lease holds; from the holder's release
  (its DeleteLease answered) to the waiting client knowing its lease is ready, and to its
  first driver call answered through the router; p50 and p90;
- after the grant: from the controller's grant (the lease's Ready condition's time) to the
  waiting client knowing it; the original's client polls every 5 s, ours long-polls.

On a 2-core machine the controller, the exporter and this process share the cores.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))

from jumpstarter.client import connect_async  # noqa: E402
from jumpstarter.client.lab import LabClient, is_ready  # noqa: E402
from jumpstarter.client.leasing import LeaseSession  # noqa: E402
from jumpstarter.config.client import ClientConfig, load_client_file  # noqa: E402
from jumpstarter.testing import BIN, Commands  # noqa: E402
from testsupport.lab_exporter import start_lab_bench  # noqa: E402


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def shell_runs(commands: Commands, alice: Path, rounds: int) -> list[float]:
    argv = [str(BIN / "jmp"), "shell", "--client-config", str(alice), "-l", "board=rpi4", "--", "true"]
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        subprocess.run(argv, env=commands.env(), check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return times


async def hand_overs(alice: Path, rounds: int) -> tuple[list[float], list[float], list[float]]:
    config = load_client_file(alice)
    figures: tuple[list[float], list[float], list[float]] = ([], [], [])
    async with LabClient.open(config) as lab:
        for _ in range(rounds):
            for figure, value in zip(figures, await _hand_over(lab, config), strict=True):
                figure.append(value)
    return figures


async def _hand_over(lab: LabClient, config: ClientConfig) -> tuple[float, float, float]:
    """One hand-over: (release to known, release to first call, grant to known), in seconds."""
    holder = await lab.create_lease("board=rpi4", 60)
    while not is_ready(holder):
        holder, _ = await lab.wait_lease(holder.name, 20)
    waiting = anyio.Event()
    released = 0.0

    async def release() -> None:
        nonlocal released
        await waiting.wait()
        await lab.delete_lease(holder.name)
        released = time.perf_counter()

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(release)
        async with LeaseSession.open(
            config, selector="board=rpi4", duration=60, on_waiting=lambda lease: waiting.set()
        ) as session:
            known_at, granted_known = time.perf_counter(), time.time()
            stamp = session.lease.conditions[-1].lastTransitionTime
            grant = stamp.seconds + stamp.nanos / 1e9
            async with connect_async(session.socket) as client:
                await client.power.call_async("on")
            called_at = time.perf_counter()
    return known_at - released, called_at - released, granted_known - grant


def main(scale: float) -> None:
    rounds = max(2, round(20 * scale))
    with tempfile.TemporaryDirectory() as directory, Commands(Path(directory)) as commands:
        bench = start_lab_bench(commands, Path(directory) / "state")
        shell = shell_runs(commands, bench.alice, rounds)
        known, first_call, after_grant = anyio.run(hand_overs, bench.alice, rounds)
    print(f"Lab figures ({rounds} rounds; controller, exporter and client on one machine)")
    print()
    print("| Figure | p50 | p90 |")
    print("|---|---|---|")
    for figure, values in (
        ("`jmp shell --selector board=rpi4 -- true`", shell),
        ("release → next waiting client knows its lease", known),
        ("release → its first driver call answered", first_call),
        ("controller's grant → client knows", after_grant),
    ):
        print(f"| {figure} | {_ms(statistics.median(values))} | {_ms(percentile(values, 0.9))} |")


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the number of rounds")
    main(parser.parse_args().scale)
