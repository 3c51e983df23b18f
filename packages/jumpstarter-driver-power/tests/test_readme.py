"""The README stays true: its configurations load and run, its tables list the real settings and commands,
its console session prints what the command line prints, and its Python example runs."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import re
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from jumpstarter_driver_power.command import CommandPower
from jumpstarter_driver_power.common import PowerReading
from jumpstarter_driver_power.driver import MockPower, SyncMockPower
from jumpstarter_driver_power.serialrelay import SerialRelayPower
from jumpstarter_driver_power.usbdevice import udev_rule
from jumpstarter_driver_power.usbhub import UsbHubPower
from jumpstarter_driver_power.usbrelay import UsbRelayPower

from jumpstarter.client import DriverClient
from jumpstarter.config.exporter import load_exporter_config
from jumpstarter.driver import Composite, Driver
from jumpstarter.testing import serve
from testsupport.pdu import Pductl
from testsupport.pty import PseudoTerminal
from testsupport.usb import FakeBackend, FakeHub, FakeRelayBoard, Transfer

README = (Path(__file__).parents[1] / "README.md").read_text()
DRIVERS = {
    cls.__name__: cls for cls in (MockPower, SyncMockPower, UsbHubPower, UsbRelayPower, SerialRelayPower, CommandPower)
}
BASE_FIELDS = {field.name for field in dataclasses.fields(Driver)}
OK = [sys.executable, "-c", ""]


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, re.DOTALL | re.MULTILINE)


def example(driver: str) -> str:
    [block] = [block for block in blocks("yaml") if yaml.safe_load(block)["export"]["power"]["type"] == driver]
    return block


def section(heading: str) -> str:
    """The README's text from `heading` to the next heading of the same level or above."""
    level = heading.split(" ")[0]
    start = README.index(f"\n{heading}\n")
    end = re.compile(rf"\n#{{1,{len(level)}}} ").search(README, start + 1)
    return README[start : end.start() if end else len(README)]


def first_column(text: str) -> list[str]:
    """The names in backticks of the first column of the table in `text`."""
    return re.findall(r"^\| `([^`]+)`", text, re.MULTILINE)


@contextlib.contextmanager
def exporter(
    block: str, tmp_path: Path, usb: FakeBackend | None = None, port: str | None = None
) -> Iterator[DriverClient]:
    """Build the exporter tree of a README configuration and serve it.

    The driver reaches the test's hardware: `usb`, a fake pyusb backend, or `port`, a
    pseudo-terminal standing in for the configured serial port.
    """
    path = tmp_path / "exporter.yaml"
    path.write_text(block)
    tree = load_exporter_config(path).build()
    assert isinstance(tree, Composite)
    power = tree.children["power"]
    if usb is not None:
        power.use_backend(usb)
    if port is not None:
        power.port = port
    with serve(tree) as client:
        yield client


def j(client: DriverClient, command: str) -> str:
    """What ``j power ...`` prints: the command run through the root's command line, like `j` mounts it."""
    result = CliRunner().invoke(client.cli(), shlex.split(command))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def test_every_driver_has_an_example_and_a_parameters_table() -> None:
    types = [yaml.safe_load(block)["export"]["power"]["type"] for block in blocks("yaml")]
    assert types == ["MockPower", "UsbHubPower", "UsbRelayPower", "SerialRelayPower", "CommandPower"]
    assert {name for name in DRIVERS if name != "SyncMockPower"} == set(types)  # SyncMockPower shares MockPower's


@pytest.mark.parametrize(
    ("heading", "driver"),
    [
        ("### MockPower and SyncMockPower", MockPower),
        ("### MockPower and SyncMockPower", SyncMockPower),
        ("### UsbHubPower", UsbHubPower),
        ("### UsbRelayPower", UsbRelayPower),
        ("### SerialRelayPower", SerialRelayPower),
        ("### CommandPower", CommandPower),
    ],
)
def test_the_parameters_tables_list_the_driver_s_settings(heading: str, driver: type[Driver]) -> None:
    settings = {f.name for f in dataclasses.fields(driver) if f.init and not f.name.startswith("_")} - BASE_FIELDS
    assert set(first_column(section(heading))) == settings


def test_the_command_table_lists_the_commands() -> None:
    with serve(MockPower()) as power:
        commands = set(power.cli().commands)
    assert {name.split(" ")[0] for name in first_column(section("## Command line"))} == commands


def test_the_client_api_table_lists_the_client_s_methods() -> None:
    from jumpstarter_driver_power.client import PowerClient

    listed = {name.split("(")[0] for name in first_column(section("## Client API"))}
    public = {name for name in vars(PowerClient) if not name.startswith("_") and not name.endswith("_async")}
    assert listed == public
    for name in public - {"cli"}:
        assert f"`{name}_async(" in README


def test_mock_power_example(tmp_path: Path) -> None:
    with exporter(example("MockPower"), tmp_path) as client:
        assert j(client, "power on") == "power on\n"
        assert j(client, "power read") == "voltage=12.0 V  current=0.5 A  apparent_power=6.0 VA\n"
        assert client.power.state() is True


def test_usb_hub_power_example(tmp_path: Path) -> None:
    hub = FakeHub(address=5, port_numbers=(1,), vendor=0x2109, product=0x2817, ports=4)
    other = FakeHub(address=6, port_numbers=(2,), vendor=0x2109, product=0x2817, ports=4)
    with exporter(example("UsbHubPower"), tmp_path, usb=FakeBackend(other, hub)) as client:
        assert j(client, "power off") == "power off\n"
        assert j(client, "power state") == "off\n"
    assert hub.transfers == [
        Transfer(0xA0, 6, 0x2900, 0, 71),
        Transfer(0x23, 1, 8, 2, b""),
        Transfer(0xA3, 0, 0, 2, 4),
    ]
    assert other.transfers == []


def test_usb_relay_power_example(tmp_path: Path) -> None:
    ours = FakeRelayBoard(address=7, port_numbers=(3,), relays=2, board_serial="QAAMZ")
    other = FakeRelayBoard(address=8, port_numbers=(4,), relays=2, board_serial="ZZZZZ")
    with exporter(example("UsbRelayPower"), tmp_path, usb=FakeBackend(other, ours)) as client:
        assert j(client, "power on") == "power on\n"
        assert j(client, "power state") == "on\n"
    assert (ours.mask, other.mask) == (0b10, 0)


def test_serial_relay_power_example(tmp_path: Path, pty: PseudoTerminal) -> None:
    # The example's /dev/serial/by-id/ port stands for the pseudo-terminal.
    with exporter(example("SerialRelayPower"), tmp_path, port=pty.path) as client:
        assert j(client, "power on") == "power on\n"
        assert pty.read_exactly(4).hex(" ") == "a0 02 01 a3"
        assert j(client, "power off") == "power off\n"
        assert pty.read_exactly(4).hex(" ") == "a0 02 00 a2"


def test_command_power_example_and_the_console_session(tmp_path: Path, pductl: Pductl) -> None:
    session = section("## Command line")
    [console] = re.findall(r"```console\n(.*?)```", session, re.DOTALL)
    steps = re.split(r"^\$ ", console, flags=re.MULTILINE)[1:]
    assert len(steps) == 5
    with exporter(example("CommandPower"), tmp_path) as client:
        for step in steps:
            command, _, expected = step.partition("\n")
            assert command.startswith("j ")
            assert j(client, command[2:]) == expected, command
    assert pductl.calls() == [
        "--outlet 3 on",
        "--outlet 3 status",
        "--outlet 3 off",
        "--outlet 3 on",
        "--outlet 3 measure",
        "--outlet 3 measure",
        "--outlet 3 measure",
        "--outlet 3 off",
    ]


def test_the_python_example_runs() -> None:
    [code] = blocks("python")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, "README.md", "exec"), {"__name__": "__main__"})
    assert printed.getvalue() == "12.0 0.5 6.0\n"


def test_the_default_read_pattern_reads_the_readme_s_sample() -> None:
    [sample] = re.findall(r"```text\n(Voltage:.*?)```", README, re.DOTALL)
    assert "voltage=230.1 current=0.25" in README
    for output in (sample, "voltage=230.1 current=0.25"):
        assert CommandPower(on_command=OK, off_command=OK)._parse_readings(output) == [
            PowerReading(voltage=230.1, current=0.25)
        ]


def test_the_read_pattern_example_reads_its_line() -> None:
    [pattern] = re.findall(r"`read_pattern: '([^']+)'`", README)
    table = "2 230.0 0.1\n3 229.8 0.41\n"
    driver = CommandPower(
        on_command=OK,
        off_command=OK,
        read_command=[sys.executable, "-c", f"print({table!r}, end='')"],
        read_pattern=pattern,
    )
    with serve(driver) as power:
        assert [(reading.voltage, reading.current) for reading in power.read()] == [(229.8, 0.41)]


def test_the_udev_rule_is_the_one_the_error_names() -> None:
    [rule] = re.findall(r"```text\n(SUBSYSTEM.*?)\n```", README)
    assert rule == udev_rule(0x2109, 0x2817)
