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
  listener; with the CPU time each process used for those bytes (per MB sent: this process,
  the exporter, the controller), which the load of the machine does not change much;
- the router hop alone, as a yardstick: two RouterService streams through the controller's
  router, both sending the same bytes at once in 64 KiB frames (as the echo's two directions).

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
import uuid
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
from jumpstarter_controller.router import mint_stream_token  # noqa: E402
from jumpstarter_controller.state import StateDir  # noqa: E402
from testsupport.lab_exporter import lab_exporter_config, start_lab_bench, start_lab_exporter  # noqa: E402
from testsupport.labcontroller import LabController  # noqa: E402
from testsupport.router import RouterEnd, router_end  # noqa: E402

CHUNK = 64 * 1024
ROUNDS = 3  # of each transfer; the best counts


class Transfer:
    """The best of `ROUNDS` transfers of `size` bytes, and the CPU time each process used for all of them."""

    def __init__(self, size: int, pids: dict[str, int]) -> None:
        self.size, self._pids = size, pids
        self.seconds: list[float] = []
        self.cpu: dict[str, float] = {}

    def __enter__(self) -> Transfer:
        self._before = cpu_seconds(self._pids)
        return self

    def __exit__(self, *exc_info: object) -> None:
        after = cpu_seconds(self._pids)
        self.cpu = {name: after[name] - self._before[name] for name in after}

    def mb_per_s(self) -> float:
        return self.size / min(self.seconds) / 1e6

    def cpu_ms_per_mb(self, name: str) -> float:
        return self.cpu[name] * 1000 / (len(self.seconds) * self.size / 1e6)


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """The CPU time (user and system, all threads) used so far by this process ("client") and by `pids` (Linux)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    seconds = {"client": usage.ru_utime + usage.ru_stime}
    for name, pid in pids.items():
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        seconds[name] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return seconds


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


async def _calls_and_stream(
    client: DriverClient, calls: int, data: bytes, pids: dict[str, int]
) -> tuple[list[float], Transfer]:
    """Latencies of `calls` driver calls; `ROUNDS` echo transfers of `data`."""
    latencies = []
    for _ in range(calls):
        started = time.perf_counter()
        await client.children["power"].call_async("on")
        latencies.append(time.perf_counter() - started)
    with Transfer(len(data), pids) as transfer:
        for _ in range(ROUNDS):
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
                transfer.seconds.append(time.perf_counter() - started)
    return latencies, transfer


async def routed_and_direct(
    alice: Path, direct: ExporterEndpoint, calls: int, size: int, pids: dict[str, int]
) -> dict[str, tuple[list[float], Transfer]]:
    """Both paths during one lease (a lab exporter serves its TCP clients while it is leased)."""
    data = os.urandom(size)
    figures = {}
    async with LeaseSession.open(load_client_file(alice), selector="board=bench", duration=300) as session:
        async with connect_async(session.socket) as client:
            figures["router"] = await _calls_and_stream(client, calls, data, pids)
        async with connect_async(direct) as client:
            figures["direct"] = await _calls_and_stream(client, calls, data, pids)
    return figures


async def router_alone(lab: LabController, size: int, pids: dict[str, int]) -> Transfer:
    """Two streams through the controller's router (tokens minted with its key), both sending `size` bytes at once."""
    state = StateDir(lab.state_dir, create=False)
    ca, data = state.ca_path.read_bytes(), os.urandom(size)
    with Transfer(size, pids) as transfer:
        for _ in range(ROUNDS):
            token = mint_stream_token(state.signing_key(), stream_id=str(uuid.uuid4()), lease="bench")
            async with router_end(lab.endpoint, ca, token) as one, router_end(lab.endpoint, ca, token) as other:
                started = time.perf_counter()
                async with anyio.create_task_group() as tasks:
                    for sender, receiver in ((one, other), (other, one)):
                        tasks.start_soon(_send_and_close, sender, data)
                        tasks.start_soon(_receive_all, receiver, size)
                transfer.seconds.append(time.perf_counter() - started)
    return transfer


async def _send_and_close(end: RouterEnd, data: bytes) -> None:
    await end.send(data, CHUNK)
    await end.close_sending()


async def _receive_all(end: RouterEnd, size: int) -> None:
    received = await end.receive_all()
    assert len(received) == size, f"{len(received)} bytes of {size} came through the router"


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
        pids = {"exporter": commands.started[-1].pid, "controller": bench.lab.process.pid}
        paths = anyio.run(routed_and_direct, bench.alice, direct, calls, size, pids)
        alone = anyio.run(router_alone, bench.lab, size, pids)
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
    print(f"Through the router beside direct ({calls} calls; {size // (1024 * 1024)} MiB echoed, best of {ROUNDS}; "
          "CPU time per MB sent: this process + the exporter + the controller)")  # fmt: skip
    print()
    print("| Path | driver call p50 | driver call p90 | exportstream | CPU per MB |")
    print("|---|---|---|---|---|")
    for path, label in (("router", "lease: Dial, the router"), ("direct", "`--host`: TLS to the exporter")):
        latencies, transfer = paths[path]
        print(f"| {label} | {_ms(statistics.median(latencies), 2)} | {_ms(percentile(latencies, 0.9), 2)} "
              f"| {transfer.mb_per_s():.0f} MB/s | {_cpu(transfer)} |")  # fmt: skip
    print(f"| the router hop alone: two streams, both ways | | | {alone.mb_per_s():.0f} MB/s | {_cpu(alone)} |")


def _cpu(transfer: Transfer) -> str:
    parts = [transfer.cpu_ms_per_mb(name) for name in ("client", "exporter", "controller")]
    return " + ".join(f"{part:.1f}" for part in parts) + f" = {sum(parts):.1f} ms"


def _ms(seconds: float, digits: int = 0) -> str:
    return f"{seconds * 1000:.{digits}f} ms"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the number of rounds")
    main(parser.parse_args().scale)
