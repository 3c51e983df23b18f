"""Latency of the power drivers' calls through a real gRPC connection (`serve()`, one client thread).

    uv run python benchmarks/power_calls.py              # prints a markdown table
    uv run python benchmarks/power_calls.py --scale 0.2  # fewer iterations, for a quick look

Each figure is the median (and the 90th percentile) of single calls made one after the other,
after a few warm-up calls. UsbHubPower talks to the fake pyusb backend of the package's tests,
so its figure is the cost of the driver and pyusb, without a USB bus. CommandPower starts a
real process per call (`python -c pass`), which dominates its figure.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner
from jumpstarter_driver_power.command import CommandPower
from jumpstarter_driver_power.driver import MockPower, SyncMockPower
from jumpstarter_driver_power.usbhub import UsbHubPower
from usb.backend import IBackend

from jumpstarter.common.utils import serve
from jumpstarter.driver import Driver

# The workspace's test-support package (tests/support/testsupport), which this script imports.
SUPPORT = Path(__file__).resolve().parent.parent / "tests" / "support"


def fake_hub_backend() -> IBackend:
    """The tests' fake pyusb backend, with one per-port switching hub on bus 1, port 1."""
    sys.path.insert(0, str(SUPPORT))
    try:
        fake = importlib.import_module("testsupport.usb")
    finally:
        sys.path.remove(str(SUPPORT))
    return fake.FakeBackend(fake.FakeHub(address=5, port_numbers=(1,)))


def timed(call: Callable[[], object], count: int, warmup: int = 5) -> tuple[float, float]:
    """(median, 90th percentile) of `count` calls, in milliseconds."""
    for _ in range(warmup):
        call()
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), statistics.quantiles(samples, n=10)[-1]


def measure(label: str, driver: Driver, method: str, count: int) -> tuple[str, float, float]:
    with serve(driver) as power:
        if method == "read":
            median, p90 = timed(lambda: list(power.read()), count)
        elif method == "cli read":
            readings = 100
            cli = power.cli()
            median, p90 = timed(
                lambda: CliRunner().invoke(cli, ["read", "--count", str(readings), "--interval", "0"]), count, warmup=1
            )
            median, p90 = median / readings, p90 / readings
        else:
            median, p90 = timed(getattr(power, method), count)
    return label, median, p90


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the number of iterations")
    scale = parser.parse_args().scale

    def n(count: int) -> int:
        return max(10, round(count * scale))

    hub = UsbHubPower(usb_id="2109:2817", port=1).use_backend(fake_hub_backend())
    pass_command = [sys.executable, "-c", "pass"]
    rows = [
        measure("`MockPower.on`", MockPower(), "on", n(2000)),
        measure("`SyncMockPower.on`", SyncMockPower(), "on", n(2000)),
        measure("`MockPower.read` (one reading)", MockPower(initially_on=True), "read", n(2000)),
        measure("`UsbHubPower.on` (fake pyusb backend)", hub, "on", n(2000)),
        measure(
            "`CommandPower.on` (`python -c pass`)",
            CommandPower(on_command=pass_command, off_command=pass_command),
            "on",
            n(50),
        ),
        measure(
            "`j power read --count 100 --interval 0`, per reading", MockPower(initially_on=True), "cli read", n(20)
        ),
    ]
    print("| Driver and call | Median | 90th percentile |")
    print("|---|---|---|")
    for label, median, p90 in rows:
        print(f"| {label} | {median:.2f} ms | {p90:.2f} ms |")


if __name__ == "__main__":
    main()
