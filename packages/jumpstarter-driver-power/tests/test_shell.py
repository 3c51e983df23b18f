"""End to end: `jmp shell --exporter-config FILE -- sh -c "j <driver> ..."`, as real processes, for every driver.

`jmp shell` builds the drivers from the YAML file in its own process and serves them while
its command runs, so the `j` commands of one shell share the drivers' state. One shell
serves one driver of each kind (a shell takes a second or two to start) and runs a script
of `j` commands for each (few: each `j` is a new process, half a second); the tests check
what each command printed (stdout), its exit status, and the one-line message of one that
fails (stderr). The hardware: a
pseudo-terminal, a fake PDU tool, and fake USB buses that the exporter process builds
itself (`testsupport.usb_drivers`). The shell runs through `jumpstarter.testing.Commands`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from jumpstarter.testing import CommandResult, Commands
from testsupport import SUPPORT
from testsupport.pdu import Pductl
from testsupport.pty import PseudoTerminal

# The j commands run for each driver, in order; each is followed by its exit status.
SCRIPTS = {
    "power": ["cycle --wait 0", "read --count 2 --interval 0"],
    "hub": ["off", "state"],
    "relay": ["on", "state"],
    "serial": ["on", "state"],
    "pdu": ["on", "read"],
}


def exporter_config(pty: PseudoTerminal) -> str:
    return f"""\
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata:
  name: bench
export:
  power:
    type: MockPower
    config:
      voltage: 12
      current: 0.5
  hub:
    type: testsupport.usb_drivers.FakeBusUsbHubPower
    config:
      path: 1-1
      port: 2
  relay:
    type: testsupport.usb_drivers.FakeBusUsbRelayPower
    config:
      serial: QAAMZ
      relay: 2
  serial:
    type: SerialRelayPower
    config:
      port: {pty.path}
      channel: 3
  pdu:
    type: CommandPower
    config:
      on_command: pductl --outlet 7 on
      off_command: [pductl, --outlet, "7", "off"]
      state_command: pductl --outlet 7 status
      read_command: pductl --outlet 7 measure
"""


def jmp_shell(config: Path, script: str, path: str) -> CommandResult:
    """``jmp shell --exporter-config CONFIG -- sh -c SCRIPT`` with `path` (the fake PDU tool) first on PATH."""
    # testsupport, whose drivers the configuration names, on the exporter's path.
    with Commands(config.parent, PYTHONPATH=str(SUPPORT)) as commands:
        on_path = f"{path}{os.pathsep}{commands.env()['PATH']}"
        return commands.shell(config, "sh", "-c", script, timeout=60, PATH=on_path)


@dataclass
class Bench:
    """What the shell printed, by driver: stdout lines (with rc=N after each command), and stderr."""

    returncode: int
    output: dict[str, list[str]]
    stderr: str
    pty: PseudoTerminal
    pductl: Pductl

    def errors(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("j: error: ")]


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    directory = tmp_path_factory.mktemp("shell")
    (directory / "bin").mkdir()
    pductl = Pductl(directory / "bin")
    pty = PseudoTerminal(raw=False)
    try:
        config = directory / "exporter.yaml"
        config.write_text(exporter_config(pty))
        script = "; ".join(
            f"echo '## {name}'; " + "; ".join(f'j {name} {command}; echo "rc=$?"' for command in commands)
            for name, commands in SCRIPTS.items()
        )
        run = jmp_shell(config, script, str(directory / "bin"))
        yield Bench(run.returncode, run.sections(), run.stderr, pty, pductl)
    finally:
        pty.close()


def test_the_shell_ran_every_script_without_a_traceback(bench: Bench) -> None:
    assert bench.returncode == 0, bench.stderr
    assert list(bench.output) == list(SCRIPTS)
    assert "Traceback" not in bench.stderr


def test_mock_power(bench: Bench) -> None:
    # The session lasts as long as the shell: the cycle left the power on for the next command.
    assert bench.output["power"] == [
        *["power cycled (off for 0 s)", "rc=0"],
        *["voltage=12.0 V  current=0.5 A  apparent_power=6.0 VA"] * 2,
        "rc=0",
    ]


def test_usb_hub_power(bench: Bench) -> None:
    # state reads the port status back from the (fake) hub that off switched.
    assert bench.output["hub"] == ["power off", "rc=0", "off", "rc=0"]


def test_usb_relay_power(bench: Bench) -> None:
    assert bench.output["relay"] == ["power on", "rc=0", "on", "rc=0"]


def test_serial_relay_power_and_a_failing_command(bench: Bench) -> None:
    assert bench.output["serial"] == ["power on", "rc=0", "rc=1"]
    assert bench.pty.read_exactly(4) == bytes.fromhex("a0 03 01 a4")
    assert bench.pty.pending() == b""
    assert bench.errors() == [
        "j: error: power driver 'serial' cannot tell whether the power is on: "
        "a serial relay module takes commands but does not report its state"
    ]


def test_command_power(bench: Bench) -> None:
    assert bench.output["pdu"] == [
        *["power on", "rc=0"],
        *["voltage=230.5 V  current=0.25 A  apparent_power=57.625 VA", "rc=0"],
    ]
    assert bench.pductl.calls() == ["--outlet 7 on", "--outlet 7 measure"]


def test_a_bad_setting_stops_the_shell_with_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "exporter.yaml"
    config.write_text(
        "metadata:\n  name: bench\n"
        "export:\n  power:\n    type: UsbHubPower\n    config:\n      path: 1-1\n      port: 0\n"
    )
    run = jmp_shell(config, "j power on", "")
    assert (run.returncode, run.stdout) == (2, "")
    assert "port must be the number of a port of the hub, from 1 to 255, not 0" in run.stderr
    assert "Traceback" not in run.stderr
