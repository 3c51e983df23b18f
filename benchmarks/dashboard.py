"""The dashboard in a real browser: time to render the exporters page, and from a change to the screen.

    uv run python benchmarks/dashboard.py                # 1,000 exporters (prints a table)
    uv run python benchmarks/dashboard.py --exporters 50 # a quick look

A real `jmp controller run` (SQLite, TLS) and Debian's headless Chromium driven by Selenium:

- **Exporters page**: the browser's Navigation Timing for /exporters (request start to the
  load event), with N exporters in the lab; p50 and p99 of 20 loads; and of it, the answer
  (request start to the response's end: the server's render and the transfer).
- **Change to screen**: an exporter is created through the admin service while the page is open;
  from the controller's change (the time it stamps on the change feed) to its row shown (the
  page stamps it; the feed carries the changed rows): p50 and p99 of 20 changes. Both clocks are
  this host's.
- **Leases page** (with ``--leases N``): N waiting leases of some clients, the same two figures for
  /leases; the change is a new lease, which the feed's row diff puts on top of the waiting table
  (each table shows 200 rows at most: the diff also drops the row pushed past its end).

    uv run python benchmarks/dashboard.py --exporters 100 --leases 1000
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from anyio.from_thread import start_blocking_portal

from jumpstarter_controller.admin_client import Connection, write_config
from jumpstarter_controller.peers import Peer

JMP = Path(sys.executable).parent / "jmp"


def _start(state_dir: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen([str(JMP), "controller", "run", "--state-dir", str(state_dir), "--listen",
                                "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert process.stdout is not None
    url = ""
    for line in process.stdout:
        match = re.search(r"dashboard on (\S+)", line)
        if match:
            url = match.group(1)
        if line.startswith("CA certificate:"):
            return process, url
    raise SystemExit("the controller did not start")


def _browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--ignore-certificate-errors",
                     "--disable-background-networking", "--disable-component-update", "--no-first-run",
                     "--window-size=1280,800"):  # fmt: skip
        options.add_argument(argument)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def _percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):7.1f} ms   p99 {p99:7.1f} ms"


SHOWN_AFTER = "return Number(document.body.dataset.shownAt) - Number(document.body.dataset.changedAt)"
# The leases the page counts: its three tables' counts (active, waiting, ended).
COUNTED = ("return ['active', 'pending', 'ended'].reduce("
           "(n, state) => n + Number(document.getElementById('count-leases-' + state).textContent), 0)")  # fmt: skip


PER_CLIENT = 50  # leases per client (the controller lets one client hold 100)


def _leases_page(browser: Any, url: str, admin: Connection, directory: Path, leases: int, rounds: int) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    configs = []
    for number in range(-(-(leases + rounds) // PER_CLIENT)):
        name = f"bench{number:03d}"
        configs.append(directory / f"{name}.yaml")
        token = admin.call("create_client", namespace="default", name=name, labels={})["token"]
        write_config(configs[-1], "client", admin, "default", name, token)

    async def create(configs: list[Path], count: int) -> None:
        async def some(config: Path, count: int) -> None:
            async with Peer.from_config(config) as peer:
                for _ in range(count):
                    await peer.create_lease("board=sim", seconds=3600)

        async with anyio.create_task_group() as tasks:
            for start in range(0, count, PER_CLIENT):
                tasks.start_soon(some, configs[start // PER_CLIENT], min(PER_CLIENT, count - start))

    with start_blocking_portal() as portal:
        started = time.monotonic()
        portal.call(create, configs, leases)
        made = time.monotonic() - started
        loads, responses = [], []
        for _ in range(rounds):
            browser.get(url + "leases")
            timing = browser.execute_script(
                "const t = performance.getEntriesByType('navigation')[0];"
                "return [t.loadEventEnd - t.requestStart, t.responseEnd - t.requestStart]"
            )
            loads.append(float(timing[0]))
            responses.append(float(timing[1]))
        WebDriverWait(browser, 30).until(lambda b: "on" in (b.find_element("id", "live").get_attribute("class")))
        delays = []
        for number in range(rounds):
            portal.call(create, configs[-1:], 1)  # the last client's: it holds `rounds` at most
            total = leases + number + 1
            WebDriverWait(browser, 30, poll_frequency=0.01).until(lambda b, n=total: b.execute_script(COUNTED) == n)  # type: ignore[misc]
            delays.append(float(browser.execute_script(SHOWN_AFTER)))
            time.sleep(0.05)  # let the page settle between changes (not a synchronisation)
    print(f"dashboard, {leases} leases ({made:.0f} s to create), {rounds} rounds")
    print(f"  leases page load      {_percentiles(loads)}")
    print(f"    of which the answer {_percentiles(responses)}")
    print(f"  change to screen      {_percentiles(delays)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exporters", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--leases", type=int, default=0, help="also measure the leases page with this many leases")
    args = parser.parse_args()
    from selenium.webdriver.support.ui import WebDriverWait

    with tempfile.TemporaryDirectory() as directory:
        state_dir = Path(directory) / "state"
        process, url = _start(state_dir)
        browser = None
        try:
            admin = Connection.from_state_dir(state_dir)
            for number in range(args.exporters):
                admin.call("create_exporter", namespace="default", name=f"board{number:04d}",
                           labels={"board": "sim", "rack": f"r{number % 10}"})  # fmt: skip
            browser = _browser()
            login = subprocess.run([str(JMP), "admin", "--state-dir", str(state_dir), "dashboard-login"],
                                   capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
            browser.get(login)
            browser.find_element("id", "login").click()
            WebDriverWait(browser, 30).until(lambda b: b.current_url.endswith("/exporters"))
            loads, responses = [], []
            for _ in range(args.rounds):
                browser.get(url + "exporters")
                timing = browser.execute_script(
                    "const t = performance.getEntriesByType('navigation')[0];"
                    "return [t.loadEventEnd - t.requestStart, t.responseEnd - t.requestStart]"
                )
                loads.append(float(timing[0]))
                responses.append(float(timing[1]))
            WebDriverWait(browser, 30).until(lambda b: "on" in (b.find_element("id", "live").get_attribute("class")))
            delays = []
            for number in range(args.rounds):
                name = f"new{number:03d}"
                admin.call("create_exporter", namespace="default", name=name, labels={})
                WebDriverWait(browser, 30, poll_frequency=0.01).until(
                    lambda b, name=name: b.execute_script(  # type: ignore[misc]
                        "return document.querySelector(arguments[0]) !== null", f"tr[data-key='default/{name}']"
                    )
                )
                shown_after = "return Number(document.body.dataset.shownAt) - Number(document.body.dataset.changedAt)"
                delays.append(float(browser.execute_script(shown_after)))
                time.sleep(0.05)  # let the page settle between changes (not a synchronisation)
            print(f"dashboard, {args.exporters} exporters, {args.rounds} rounds (headless Chromium, TLS, this host)")
            print(f"  exporters page load   {_percentiles(loads)}")
            print(f"    of which the answer {_percentiles(responses)}")
            print(f"  change to screen      {_percentiles(delays)}")
            if args.leases:
                _leases_page(browser, url, admin, Path(directory), args.leases, args.rounds)
        finally:
            if browser is not None:
                browser.quit()
            process.terminate()
            process.wait(10)


if __name__ == "__main__":
    main()
