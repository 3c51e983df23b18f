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
  waiting client knowing it; the original's client polls every 5 s, ours long-polls;
- through the router beside direct: one exporter (`jmp exporter run --tcp`, in the lab and
  listening on TCP with TLS and a token as for `jmp shell --host`, which it serves while
  leased), a driver call (MockPower `on`, p50 and p90) and bytes through an `@exportstream`
  (EchoNetwork: sent and echoed back at once, 64 KiB writes, MB/s of the bytes sent, best of
  three), once through a lease's tunnel (Dial, the router) and once straight to its TCP
  listener.

The `jmp shell` processes run with bytecode (.pyc files written by a first run, as an
installed package has them): without it Python compiles every module it imports, each run.
On a 2-core machine the controller, the exporter and this process share the cores.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))

import yaml  # noqa: E402

from jumpstarter.client import DriverClient, connect_async  # noqa: E402
from jumpstarter.client.endpoint import ExporterEndpoint  # noqa: E402
from jumpstarter.client.lab import LabClient, is_ready  # noqa: E402
from jumpstarter.client.leasing import LeaseSession  # noqa: E402
from jumpstarter.config.client import ClientConfig, load_client_file  # noqa: E402
from jumpstarter.testing import BIN, Commands  # noqa: E402
from testsupport.lab_exporter import lab_exporter_config, start_lab_bench, start_lab_exporter  # noqa: E402
from testsupport.labcontroller import LabController  # noqa: E402

CHUNK = 64 * 1024


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def shell_runs(commands: Commands, alice: Path, rounds: int) -> tuple[list[float], list[float]]:
    """Wall times of `jmp shell ... -- true`, and the CPU time its processes used (load-independent)."""
    argv = [str(BIN / "jmp"), "shell", "--client-config", str(alice), "-l", "board=rpi4", "--", "true"]
    env = {key: value for key, value in commands.env().items() if key != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(argv, env=env, check=True, capture_output=True)  # writes the .pyc files the runs read
    times, cpu = [], []
    for _ in range(rounds):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(argv, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return times, cpu


def start_dual_exporter(commands: Commands, lab: LabController, state: Path) -> ExporterEndpoint:
    """Our exporter `bench1` (board=bench) in the lab and on TCP: a MockPower ``power`` and an EchoNetwork ``echo``."""
    config = lab_exporter_config(lab, "bench1", {"board": "bench"})
    document = yaml.safe_load(config.read_text())
    document["export"]["echo"] = {"type": "EchoNetwork"}
    config.write_text(yaml.safe_dump(document))
    process = start_lab_exporter(commands, config, "--tcp", "127.0.0.1:0", "--state-dir", str(state))
    process.wait_for(lambda out, err: re.search(r"serving on \d+\.\d+\.\d+\.\d+:\d+", err) is not None)
    match = re.search(r"serving on (\d+\.\d+\.\d+\.\d+:\d+)", process.output()[1])
    assert match is not None
    token = (state / "token").read_text().strip()
    return ExporterEndpoint(match.group(1), tls_ca=(state / "tls.crt").read_bytes(), token=token)


async def _calls_and_stream(client: DriverClient, calls: int, data: bytes) -> tuple[list[float], float]:
    """Latencies of `calls` driver calls; the best of three echo transfers of `data`, in seconds."""
    latencies = []
    for _ in range(calls):
        started = time.perf_counter()
        await client.children["power"].call_async("on")
        latencies.append(time.perf_counter() - started)
    transfers = []
    for _ in range(3):
        async with client.children["echo"].stream_async() as stream:
            started = time.perf_counter()
            async with anyio.create_task_group() as tasks:

                async def send() -> None:
                    for offset in range(0, len(data), CHUNK):
                        await stream.send(data[offset : offset + CHUNK])
                    await stream.send_eof()

                tasks.start_soon(send)
                received = 0
                while received < len(data):
                    received += len(await stream.receive())
            transfers.append(time.perf_counter() - started)
    return latencies, min(transfers)


async def routed_and_direct(
    alice: Path, direct: ExporterEndpoint, calls: int, size: int
) -> dict[str, tuple[list[float], float]]:
    """Both paths during one lease (a lab exporter serves its TCP clients while it is leased)."""
    data = os.urandom(size)
    figures = {}
    async with LeaseSession.open(load_client_file(alice), selector="board=bench", duration=300) as session:
        async with connect_async(session.socket) as client:
            figures["router"] = await _calls_and_stream(client, calls, data)
        async with connect_async(direct) as client:
            figures["direct"] = await _calls_and_stream(client, calls, data)
    return figures


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
    calls = max(20, round(500 * scale))
    size = max(CHUNK, int(64 * 1024 * 1024 * scale)) // CHUNK * CHUNK
    with tempfile.TemporaryDirectory() as directory, Commands(Path(directory)) as commands:
        bench = start_lab_bench(commands, Path(directory) / "state")
        shell, shell_cpu = shell_runs(commands, bench.alice, rounds)
        known, first_call, after_grant = anyio.run(hand_overs, bench.alice, rounds)
        direct = start_dual_exporter(commands, bench.lab, Path(directory) / "bench1")
        paths = anyio.run(routed_and_direct, bench.alice, direct, calls, size)
    load = os.getloadavg()[0]
    print(f"Lab figures ({rounds} rounds; controller, exporter and client on one machine; load average {load:.1f})")
    print()
    print("| Figure | p50 | p90 |")
    print("|---|---|---|")
    for figure, values in (
        ("`jmp shell --selector board=rpi4 -- true`", shell),
        ("its CPU time (jmp and `true`)", shell_cpu),
        ("release → next waiting client knows its lease", known),
        ("release → its first driver call answered", first_call),
        ("controller's grant → client knows", after_grant),
    ):
        print(f"| {figure} | {_ms(statistics.median(values))} | {_ms(percentile(values, 0.9))} |")
    print()
    print(f"Through the router beside direct ({calls} calls; {size // (1024 * 1024)} MiB echoed, best of 3)")
    print()
    print("| Path | driver call p50 | driver call p90 | exportstream |")
    print("|---|---|---|---|")
    for path, label in (("router", "lease: Dial, the router"), ("direct", "`--host`: TLS to the exporter")):
        latencies, seconds = paths[path]
        print(f"| {label} | {_ms(statistics.median(latencies), 2)} | {_ms(percentile(latencies, 0.9), 2)} "
              f"| {size / seconds / 1e6:.0f} MB/s |")  # fmt: skip


def _ms(seconds: float, digits: int = 0) -> str:
    return f"{seconds * 1000:.{digits}f} ms"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the number of rounds")
    main(parser.parse_args().scale)
