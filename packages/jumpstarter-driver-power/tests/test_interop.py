"""Interoperability with the original jumpstarter 0.9.0, run in its own virtual environment.

Its PowerClient (which validates readings strictly) drives our drivers; our PowerClient
drives its MockPower and SyncMockPower.
"""

from __future__ import annotations

import json
import selectors
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner
from jumpstarter_driver_power.client import PowerClient
from jumpstarter_driver_power.command import CommandPower
from jumpstarter_driver_power.common import PowerReading, StateNotSupported
from jumpstarter_driver_power.driver import MockPower, SyncMockPower
from jumpstarter_driver_power.usbhub import UsbHubPower

from jumpstarter.client import connect
from jumpstarter.driver import Composite, Driver
from jumpstarter.testing import serve_socket
from testsupport.usb import FakeBackend, FakeHub

pytestmark = pytest.mark.interop

ROOT = Path(__file__).resolve().parents[3]
TIMEOUT = 60

# Run by the original's python: its client, and its command line, drive each power driver of our exporter.
ORIGINAL_CLIENT = r"""
import json, sys
from click.testing import CliRunner
from jumpstarter.utils.env import env

def attempt(function, *args):
    try:
        return function(*args)
    except Exception as error:
        return {"error": type(error).__name__, "mro": [c.__name__ for c in type(error).__mro__], "message": str(error)}

answers = {}
with env() as client:
    for name, power in client.children.items():
        answer = {"class": type(power).__module__ + "." + type(power).__qualname__}
        power.on()
        answer["state_on"] = attempt(power.call, "state")
        answer["read"] = attempt(lambda: [[r.voltage, r.current, r.apparent_power] for r in power.read()])
        power.cycle(0)
        answer["state_cycled"] = attempt(power.call, "state")
        power.off()
        answer["state_off"] = attempt(power.call, "state")
        result = CliRunner().invoke(power.cli(), ["cycle", "--wait", "0"])
        answer["cli_cycle"] = [result.exit_code, result.output, attempt(power.call, "state")]
        result = CliRunner().invoke(power.cli(), ["read", "--count", "2", "--interval", "0"])
        answer["cli_read"] = [result.exit_code, result.output]
        answers[name] = answer
with open(sys.argv[1], "w") as out:
    json.dump(answers, out)
"""

# Run by the original's python: serves its own MockPower and SyncMockPower until stdin closes.
ORIGINAL_EXPORTER = r"""
import json, os, sys
import anyio
from jumpstarter.common import ExporterStatus
from jumpstarter.exporter import Session
from jumpstarter_driver_composite.driver import Composite
from jumpstarter_driver_power.driver import MockPower, SyncMockPower

answer = os.fdopen(os.dup(1), "w")  # the original may log to stdout: keep it for the answer
os.dup2(2, 1)

async def main():
    root = Composite(children={"mock": MockPower(), "sync": SyncMockPower()})
    with Session(root_device=root) as session:
        async with session.serve_unix_async() as path:
            session.update_status(ExporterStatus.LEASE_READY)
            answer.write(json.dumps({"socket": str(path)}) + "\n")
            answer.flush()
            await anyio.to_thread.run_sync(sys.stdin.read)

anyio.run(main)
"""


@contextmanager
def our_exporter(root: Driver) -> Iterator[str]:
    with serve_socket(root) as path:
        yield path


def test_the_original_client_drives_our_drivers(
    upstream_python: Path, upstream_env: dict[str, str], tmp_path: Path
) -> None:
    hub = FakeHub(address=5, port_numbers=(1,))
    root = Composite(
        children={
            "mock": MockPower(),
            "sync": SyncMockPower(voltage=12.0, current=0.5),
            "command": CommandPower(
                on_command=[sys.executable, "-c", ""],
                off_command=[sys.executable, "-c", ""],
                read_command=[sys.executable, "-c", "print('voltage=3.3 current=1')"],
            ),
            "hub": UsbHubPower(usb_id="2109:2817", port=1).use_backend(FakeBackend(hub)),
        }
    )
    out = tmp_path / "answers.json"
    with our_exporter(root) as path:
        run = subprocess.run(
            [str(upstream_python), "-c", ORIGINAL_CLIENT, str(out)],
            env={**upstream_env, "JUMPSTARTER_HOST": path, "JMP_DRIVERS_ALLOW": "UNSAFE"},
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    assert run.returncode == 0, run.stderr[-3000:]
    answers = json.loads(out.read_text())
    client_class = "jumpstarter_driver_power.client.PowerClient"
    assert answers["mock"] == {
        "class": client_class,
        "state_on": True,
        "read": [[5.0, 2.0, 10.0]],  # validated strictly by the original's PowerReading
        "state_cycled": True,
        "state_off": False,
        "cli_cycle": answers["mock"]["cli_cycle"],
        "cli_read": [0, "voltage=5.0 V  current=2.0 A  apparent_power=10.0 VA\n" * 2],
    }
    # The original's cycle command prints its own line (and its client's log records), and switches on again.
    code, output, state = answers["mock"]["cli_cycle"]
    assert (code, output.splitlines()[0], state) == (0, "Power cycling with 0 seconds wait time...", True)
    assert answers["sync"]["read"] == [[12.0, 0.5, 6.0]]
    assert answers["command"]["read"] == [[3.3, 1.0, 3.3]]
    assert answers["hub"]["class"] == client_class
    assert (answers["hub"]["state_on"], answers["hub"]["state_cycled"], answers["hub"]["state_off"]) == (
        True,
        True,
        False,
    )
    assert answers["hub"]["cli_cycle"][2] is True
    # The original's client raises its own DriverMethodNotImplemented, with the driver's reason.
    error = answers["hub"]["read"]
    assert error["error"] == "DriverMethodNotImplemented" and "NotImplementedError" in error["mro"]
    assert error["message"].endswith("a USB hub switches the power of its ports but does not measure it")
    error = answers["command"]["state_on"]
    assert error["error"] == "DriverMethodNotImplemented"
    assert error["message"].endswith("CommandPower has no state_command in its config")


@contextmanager
def original_exporter(python: Path, env: dict[str, str]) -> Iterator[str]:
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(
            [str(python), "-c", ORIGINAL_EXPORTER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
        )
        assert process.stdin is not None and process.stdout is not None
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(process.stdout, selectors.EVENT_READ)
                line = process.stdout.readline() if selector.select(TIMEOUT) else ""
            if not line:
                stderr.seek(0)
                raise AssertionError(f"the original exporter did not start:\n{stderr.read()[-3000:]}")
            yield json.loads(line)["socket"]
        finally:
            process.stdin.close()  # asks it to stop
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            process.stdout.close()


def test_our_client_drives_the_original_mocks(upstream_python: Path, upstream_env: dict[str, str]) -> None:
    with original_exporter(upstream_python, upstream_env) as path, connect(path) as client:
        for name in ("mock", "sync"):
            power = client.children[name]
            assert type(power) is PowerClient
            power.on()
            power.off()
            power.cycle(0)
            # The original's mocks yield two readings per measurement; they arrive as JSON, numbers as floats.
            readings = [PowerReading(voltage=0.0, current=0.0), PowerReading(voltage=5.0, current=2.0)]
            assert list(power.read()) == readings
            # The original's drivers have no state(): our client says so, with its own error.
            with pytest.raises(
                StateNotSupported, match=f"^power driver '{name}' cannot tell whether the power is on: "
            ):
                power.state()
            result = CliRunner().invoke(power.cli(), ["read", "--count", "3", "--interval", "0"])
            assert (result.exit_code, result.output.splitlines()) == (
                0,
                [
                    "voltage=0.0 V  current=0.0 A  apparent_power=0.0 VA",
                    "voltage=5.0 V  current=2.0 A  apparent_power=10.0 VA",
                    "voltage=0.0 V  current=0.0 A  apparent_power=0.0 VA",
                ],
            )
            result = CliRunner().invoke(power.cli(), ["cycle", "-w", "0"])
            assert (result.exit_code, result.output) == (0, "power cycled (off for 0 s)\n")
            result = CliRunner().invoke(power.cli(), ["state"])
            assert result.exit_code == 1
            assert result.output.startswith(f"Error: power driver '{name}' cannot tell whether the power is on: ")
