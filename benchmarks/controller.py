"""The lab controller under load: CreateLease to Ready, and many exporters and clients at once.

    uv run python benchmarks/controller.py               # 1,000 exporters, 200 clients (prints a table)
    uv run python benchmarks/controller.py --scale 0.05  # 50 exporters, 10 clients: a quick look

A real `jmp controller run` process (SQLite in its state directory, then PostgreSQL when the
distribution's server is installed), real TLS, and simulated exporters (`SimulatedExporter`:
the original exporter's sequence of calls, no hardware) in worker processes of their own:

- **CreateLease to Ready** for a free exporter: one client creates a lease (the controller
  assigns it within the call), checks it is Ready, releases it and waits until the exporter is
  free again (untimed); p50 and p99.
- **A burst**: every client connects (TLS done), then all ask for ``board=sim`` at once; how
  long until every lease is Ready (grants per second), each client's wait (p99), and the
  controller's resident memory.
- **labgrid** (benchmarks/_labgrid.py), when its environment can be made: the same places,
  time to reserve and acquire one, beside our CreateLease to Ready.
"""

from __future__ import annotations

import argparse
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import psutil

from jumpstarter_controller.admin_client import Connection, write_config
from jumpstarter_controller.peers import Peer, SimulatedExporter, bare

ROOT = Path(__file__).resolve().parent.parent
SUPPORT = ROOT / "tests" / "support"
JMP = Path(sys.executable).parent / "jmp"


def start_controller(state: Path, database: str | None) -> tuple[subprocess.Popen[str], str]:
    config = state.parent / "controller.yaml"
    config.write_text("limits: {connections_per_peer: 100000, leases_per_client: 100000}\n")
    argv = [str(JMP), "controller", "run", "--state-dir", str(state), "--listen", "127.0.0.1:0",
            "--config", str(config)]  # fmt: skip
    if database:
        argv += ["--database", database]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    lines = []
    # The controller prints where it serves, its CA and its dashboard, in no fixed order.
    while (line := process.stdout.readline()) and "serving on" not in line:
        lines.append(line)
    if "serving on" not in line:
        process.kill()
        raise SystemExit(f"the controller did not start: {''.join(lines)!r}")
    return process, line.split("serving on ")[1].strip()


def make_identities(state: Path, directory: Path, exporters: int, clients: int) -> None:
    connection = Connection.from_state_dir(state)
    for index in range(exporters):
        name = f"sim{index:04d}"
        token = connection.call("create_exporter", namespace="default", name=name, labels={"board": "sim"})["token"]
        write_config(directory / f"exporter-{name}.yaml", "exporter", connection, "default", name, token)
    for index in range(clients):
        name = f"client{index:04d}"
        token = connection.call("create_client", namespace="default", name=name)["token"]
        write_config(directory / f"client-{name}.yaml", "client", connection, "default", name, token)


def run_worker(directory: Path, part: int, parts: int) -> None:
    """A worker process: the simulated exporters whose index % parts == part, until stdin closes."""
    configs = sorted(directory.glob("exporter-*.yaml"))[part::parts]

    async def main() -> None:
        async with anyio.create_task_group() as tasks:
            registered = 0
            done = anyio.Event()

            async def one(path: Path) -> None:
                nonlocal registered
                async with Peer.from_config(path) as peer:
                    exporter = SimulatedExporter(peer)
                    await exporter.register()
                    registered += 1
                    if registered == len(configs):
                        done.set()
                    await exporter.run(register=False)

            for path in configs:
                tasks.start_soon(one, path)
            await done.wait()
            print("ready", flush=True)
            await anyio.to_thread.run_sync(sys.stdin.read)
            tasks.cancel_scope.cancel()

    anyio.run(main)


def start_workers(directory: Path, parts: int) -> list[subprocess.Popen[str]]:
    workers = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", str(directory), str(part), str(parts)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for part in range(parts)
    ]
    for worker in workers:
        assert worker.stdout is not None
        if worker.stdout.readline().strip() != "ready":
            raise SystemExit("a worker of simulated exporters did not start")
    return workers


async def create_to_ready(config: Path, rounds: int) -> list[float]:
    samples = []
    async with Peer.from_config(config) as client:
        for _ in range(rounds):
            started = time.perf_counter()
            lease = await client.create_lease("board=sim", seconds=600)
            while lease.conditions[-1].type != "Ready" or lease.conditions[-1].status != "True":
                lease = await client.get_lease(bare(lease.name))
            samples.append((time.perf_counter() - started) * 1000)
            await client.delete_lease(bare(lease.name))
            await anyio.sleep(0.02)  # the exporter acknowledges the end (untimed)
    return samples


async def burst(configs: list[Path]) -> tuple[float, list[float]]:
    """Every client connected first (TLS done), then all ask at once; the wait of each, and the total."""
    waits: list[float] = []
    connected = 0
    all_connected, go = anyio.Event(), anyio.Event()

    async def one(path: Path) -> None:
        nonlocal connected
        async with Peer.from_config(path) as client:
            await client.channel.channel_ready()
            connected += 1
            if connected == len(configs):
                all_connected.set()
            await go.wait()
            started = time.perf_counter()
            lease = await client.create_lease("board=sim", seconds=600)
            while lease.conditions[-1].type != "Ready" or lease.conditions[-1].status != "True":
                await anyio.sleep(0.05)
                lease = await client.get_lease(bare(lease.name))
            waits.append((time.perf_counter() - started) * 1000)

    async with anyio.create_task_group() as tasks:
        for path in configs:
            tasks.start_soon(one, path)
        await all_connected.wait()
        started = time.perf_counter()
        go.set()
    return time.perf_counter() - started, waits


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[-1] if len(samples) >= 2 else samples[0]


def measure(database: str | None, exporters: int, clients: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="jumpstarter-bench-") as scratch:
        directory = Path(scratch)
        controller, _ = start_controller(directory / "state", database)
        workers: list[subprocess.Popen[str]] = []
        try:
            make_identities(directory / "state", directory, exporters, clients)
            workers = start_workers(directory, max(1, min(4, exporters // 50)))
            client_configs = sorted(directory.glob("client-*.yaml"))
            latencies = anyio.run(create_to_ready, client_configs[0], rounds)
            elapsed, waits = anyio.run(burst, client_configs)
            rss = psutil.Process(controller.pid).memory_info().rss / 2**20
        finally:
            for worker in workers:
                if worker.stdin:
                    worker.stdin.close()
                worker.wait(30)
            controller.send_signal(signal.SIGTERM)
            controller.wait(30)
    return {
        "p50": statistics.median(latencies),
        "p99": p99(latencies),
        "grants": clients / elapsed,
        "wait_p99": p99(waits),
        "rss": rss,
    }


def postgres_url() -> tuple[Any, str] | None:
    sys.path.insert(0, str(SUPPORT))
    try:
        from testsupport.postgres import PostgresServer, _bin
    finally:
        sys.path.remove(str(SUPPORT))
    if _bin() is None:
        return None
    server = PostgresServer.start()
    return server, server.url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(Path(args.worker[0]), int(args.worker[1]), int(args.worker[2]))
        return
    exporters = max(4, int(1000 * args.scale))
    clients = max(2, int(200 * args.scale))
    rounds = max(10, int(200 * args.scale))
    rows = [("SQLite", measure(None, exporters, clients, rounds))]
    postgres = postgres_url()
    if postgres is not None:
        server, url = postgres
        try:
            rows.append(("PostgreSQL", measure(url, exporters, clients, rounds)))
        finally:
            server.stop()
    print(f"{exporters} simulated exporters, {clients} clients; CreateLease to Ready over {rounds} leases\n")
    print("| Database | CreateLease to Ready p50 | p99 | burst: grants/s | burst: wait p99 | controller RSS |")
    print("|---|---|---|---|---|---|")
    for name, row in rows:
        print(f"| {name} | {row['p50']:.1f} ms | {row['p99']:.1f} ms | {row['grants']:.0f} | "
              f"{row['wait_p99']:.0f} ms | {row['rss']:.0f} MiB |")  # fmt: skip
    try:
        sys.path.insert(0, str(Path(__file__).parent))
        from _labgrid import measure_labgrid

        labgrid = measure_labgrid(exporters, rounds)
    except (SystemExit, Exception) as error:  # its environment could not be made: say so, measure the rest
        print(f"\nlabgrid: not measured ({str(error).splitlines()[0] if str(error) else type(error).__name__})")
    else:
        p50, p99_ = labgrid["reserve_acquire_p50_ms"], labgrid["reserve_acquire_p99_ms"]
        print(f"\nlabgrid coordinator, {exporters} places: reserve and acquire p50 {p50:.1f} ms, p99 {p99_:.1f} ms")


if __name__ == "__main__":
    main()
