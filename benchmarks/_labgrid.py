"""labgrid's coordinator, the alternative users weigh us against: time to reserve and acquire a place.

    uv run python benchmarks/_labgrid.py [--places 1000] [--rounds 50] [--scale 1.0]

labgrid (`labgrid==26.0.1`) lives in its own virtual environment (`.cache/labgrid-26.0.1`, made
once, like the original jumpstarter's: scripts/upstream_venv.py), and runs as it would in a lab:
`labgrid-coordinator --listen 127.0.0.1:PORT` in a process of its own, started in a scratch
directory (it saves its places there). This script then runs itself with labgrid's python as the
client (``--client``), through labgrid's own `ClientSession`, and:

- creates `places` places, all tagged ``board=rpi4`` (the setup time is printed too);
- `rounds` times: creates a reservation for ``board=rpi4``, polls it until a place is allocated
  (a free place is allocated at once; labgrid-client would poll once a second), and acquires the
  place: that time, p50 and p99; then releases the place and cancels the reservation, untimed.

`measure_labgrid(places, rounds)` returns the figures, for printing beside our time from
CreateLease to a Ready lease.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LABGRID = "labgrid==26.0.1"
LOCATION = ROOT / ".cache" / "labgrid-26.0.1"
START_TIMEOUT = 60.0
RUN_TIMEOUT = 600.0


def labgrid_python() -> Path:
    """The python of labgrid's environment (made the first time; needs the package index then)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from upstream_venv import ensure_venv
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    check = f"import importlib.metadata as m; assert m.version('labgrid') == {LABGRID.split('==')[1]!r}"
    return ensure_venv(LOCATION, [LABGRID], check, LABGRID)


def measure_labgrid(places: int, rounds: int) -> dict[str, float]:
    """Start labgrid's coordinator, make `places` places, time `rounds` reserve-and-acquire cycles."""
    python = labgrid_python()
    with socket.socket() as probe:  # a free port for the coordinator, which takes no port 0
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    address = f"127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as scratch:
        coordinator = subprocess.Popen(
            [python.parent / "labgrid-coordinator", "--listen", address],
            cwd=scratch,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            _wait_for_port(port, coordinator)
            client = subprocess.run(
                [python, __file__, "--client", address, str(places), str(rounds)],
                capture_output=True,
                text=True,
                timeout=RUN_TIMEOUT,
            )
            if client.returncode != 0:
                raise RuntimeError(f"the labgrid client failed:\n{client.stderr[-3000:]}")
            return dict(json.loads(client.stdout.strip().splitlines()[-1]))
        finally:
            coordinator.terminate()
            try:
                coordinator.wait(10)
            except subprocess.TimeoutExpired:
                coordinator.kill()
                coordinator.wait()


def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"labgrid-coordinator exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"labgrid-coordinator did not listen on port {port} within {START_TIMEOUT:g} s")


# -- the client, run with labgrid's python ------------------------------------------------------


def _client(address: str, places: int, rounds: int) -> dict[str, float]:
    import asyncio

    from labgrid.remote.client import start_session
    from labgrid.remote.common import ReservationState
    from labgrid.remote.generated import labgrid_coordinator_pb2 as pb

    session = start_session(address)
    stub: Any = session.stub

    async def run() -> dict[str, float]:
        started = time.perf_counter()
        for index in range(places):
            await stub.AddPlace(pb.AddPlaceRequest(name=f"place-{index}"))
            await stub.SetPlaceTags(pb.SetPlaceTagsRequest(placename=f"place-{index}", tags={"board": "rpi4"}))
        await session.sync_with_coordinator()
        setup = time.perf_counter() - started
        times = []
        for _ in range(rounds):
            started = time.perf_counter()
            request = pb.CreateReservationRequest(
                filters={"main": pb.Reservation.Filter(filter={"board": "rpi4"})}, prio=0.0
            )
            reservation = (await stub.CreateReservation(request)).reservation
            while reservation.state != ReservationState.allocated.value:
                await asyncio.sleep(0.01)
                reservation = (
                    await stub.PollReservation(pb.PollReservationRequest(token=reservation.token))
                ).reservation
            place = reservation.allocations["main"]
            await stub.AcquirePlace(pb.AcquirePlaceRequest(placename=place))
            await session.sync_with_coordinator()
            times.append(time.perf_counter() - started)
            await stub.ReleasePlace(pb.ReleasePlaceRequest(placename=place))
            await stub.CancelReservation(pb.CancelReservationRequest(token=reservation.token))
        times.sort()
        return {
            "places": float(places),
            "setup_s": setup,
            "reserve_acquire_p50_ms": times[len(times) // 2] * 1000,
            "reserve_acquire_p99_ms": times[min(len(times) - 1, round(0.99 * (len(times) - 1)))] * 1000,
        }

    try:
        return session.loop.run_until_complete(run())
    finally:
        session.loop.run_until_complete(session.stop())
        session.loop.run_until_complete(session.close())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--places", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the places and rounds")
    parser.add_argument("--client", nargs=3, metavar=("ADDRESS", "PLACES", "ROUNDS"), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.client:
        address, places, rounds = arguments.client
        print(json.dumps(_client(address, int(places), int(rounds))))
        return
    places = max(10, round(arguments.places * arguments.scale))
    rounds = max(5, round(arguments.rounds * arguments.scale))
    figures = measure_labgrid(places, rounds)
    print(f"labgrid {LABGRID.split('==')[1]} coordinator, {places} places, {rounds} rounds")
    print()
    print("| Figure | Value |")
    print("|---|---|")
    print(f"| creating {places} places (and tagging them) | {figures['setup_s']:.1f} s |")
    print(f"| reserve and acquire a place, p50 | {figures['reserve_acquire_p50_ms']:.1f} ms |")
    print(f"| reserve and acquire a place, p99 | {figures['reserve_acquire_p99_ms']:.1f} ms |")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
