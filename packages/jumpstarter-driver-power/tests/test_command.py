"""CommandPower with real subprocesses: a fake PDU tool on the PATH, success, failures, timeouts, parsing."""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner
from jumpstarter_driver_power.command import CommandPower
from jumpstarter_driver_power.common import MeasurementNotSupported, PowerReading, StateNotSupported

from jumpstarter.client import DriverError, DriverTimeout
from jumpstarter.testing import serve
from testsupport.pdu import Pductl

OK = [sys.executable, "-c", ""]  # a command that succeeds and prints nothing


def prints(text: str) -> list[str]:
    """A command that prints `text`."""
    return [sys.executable, "-c", f"import sys; sys.stdout.write({text!r})"]


def outlet(number: int, **settings: object) -> CommandPower:
    """The driver for one outlet of the fake PDU, as an exporter config would write it."""
    config: dict = {
        "on_command": ["pductl", "--outlet", str(number), "on"],
        "off_command": f"pductl --outlet {number} off",  # text is split like a shell would, and not run by one
        "read_command": ["pductl", "--outlet", str(number), "measure"],
        "state_command": ["pductl", "--outlet", str(number), "status"],
    }
    config.update(settings)
    return CommandPower(**config)


def test_on_off_state_and_read_run_the_commands(pductl: Pductl) -> None:
    with serve(outlet(3)) as power:
        power.on()
        assert power.state() is True
        assert list(power.read()) == [PowerReading(voltage=230.5, current=0.25)]
        power.off()
        assert power.state() is False
        assert list(power.read()) == [PowerReading(voltage=230.5, current=0.0)]
    assert pductl.calls() == [
        "--outlet 3 on",
        "--outlet 3 status",
        "--outlet 3 measure",
        "--outlet 3 off",
        "--outlet 3 status",
        "--outlet 3 measure",
    ]


def test_arguments_reach_the_program_as_they_are_without_a_shell(tmp_path: Path) -> None:
    log = tmp_path / "argv.json"
    record = "import json, sys; open(sys.argv[1], 'w').write(json.dumps(sys.argv[2:]))"
    tricky = "$HOME; touch pwned `id` | *"
    with serve(
        CommandPower(
            on_command=[sys.executable, "-c", record, str(log), tricky, "two words"],
            off_command=f'{sys.executable} -c "{record}" {log} \'single quoted\' "double quoted" plain',
            cwd=str(tmp_path),
        )
    ) as power:
        power.on()
        assert log.read_text() == f'["{tricky}", "two words"]'
        power.off()
        assert log.read_text() == '["single quoted", "double quoted", "plain"]'
    assert not (tmp_path / "pwned").exists()


def test_the_environment_and_directory_of_the_commands(tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    script = (
        "import os, sys\n"
        "open(sys.argv[1], 'w').write('|'.join([os.getcwd(), os.environ['PDU_HOST'], sys.stdin.read()]))"
    )
    with serve(
        CommandPower(
            on_command=[sys.executable, "-c", script, str(out)],
            off_command=OK,
            env={"PDU_HOST": "pdu-3.lab"},
            cwd=str(tmp_path),
        )
    ) as power:
        power.on()
    # The extra variable is set, the directory is cwd, and stdin is empty (no command waits on it).
    assert out.read_text() == f"{tmp_path}|pdu-3.lab|"


def test_a_failing_command_reports_its_status_and_message(pductl: Pductl, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PDU_LOCKED", "1")
    with serve(outlet(3)) as power:
        with pytest.raises(DriverError) as caught:
            power.on()
        assert str(caught.value) == (
            "on_command `pductl --outlet 3 on` failed with exit status 3: pductl: outlet 3 is locked"
        )
        result = CliRunner().invoke(power.cli(), ["off"])
        assert (result.exit_code, result.output) == (
            1,
            "Error: off_command `pductl --outlet 3 off` failed with exit status 3: pductl: outlet 3 is locked\n",
        )
    silent = CommandPower(on_command=[sys.executable, "-c", "raise SystemExit(1)"], off_command=OK)
    with serve(silent) as power, pytest.raises(DriverError) as caught:
        power.on()
    assert str(caught.value).endswith("failed with exit status 1 and printed nothing")


def test_the_message_quotes_the_end_of_a_long_error_output() -> None:
    noisy = [sys.executable, "-c", "import sys; sys.stderr.write('x' * 100000 + ' the real reason'); sys.exit(2)"]
    with serve(CommandPower(on_command=noisy, off_command=OK)) as power, pytest.raises(DriverError) as caught:
        power.on()
    message = str(caught.value)
    assert message.endswith("failed with exit status 2: ..." + ("x" * 284) + " the real reason")


def test_a_command_that_hangs_is_killed_with_its_children(pductl: Pductl) -> None:
    with serve(CommandPower(on_command=["pductl", "hang"], off_command=OK, timeout=0.5)) as power:
        with pytest.raises(DriverTimeout) as caught:
            power.on()
        assert str(caught.value) == "on_command `pductl hang` did not finish within 0.5 s and was killed"
        # The program's own child, which held its output open, was killed too.
        assert not alive(pductl.child_pid())
        power.off()  # the driver is still usable


def test_a_call_that_is_cancelled_kills_its_command(pductl: Pductl) -> None:
    # As when the client goes away mid-call: the exporter cancels the driver's coroutine.
    driver = CommandPower(on_command=["pductl", "hang"], off_command=OK, timeout=60)

    async def main() -> None:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(driver.on)
            with anyio.fail_after(10):
                while not (pductl.directory / "child.pid").exists():  # noqa: ASYNC110 - a file to wait for
                    await anyio.sleep(0.02)
            tasks.cancel_scope.cancel()

    anyio.run(main)
    assert not alive(pductl.child_pid())


def alive(pid: int) -> bool:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                if stat.read().split(") ")[1].startswith(("Z", "X")):
                    return False  # dead, waiting for its new parent to reap it
        except FileNotFoundError:
            return False
        time.sleep(0.02)
    return True


def test_a_missing_program_is_named(tmp_path: Path) -> None:
    with serve(CommandPower(on_command=["no-such-pdu-tool", "on"], off_command=[str(tmp_path / "nope")])) as power:
        with pytest.raises(DriverError) as caught:
            power.on()
        assert str(caught.value) == "on_command cannot start: 'no-such-pdu-tool' is not found in the exporter's PATH"
        with pytest.raises(DriverError, match=r"off_command cannot start: '.*/nope' is not found in that path"):
            power.off()


def test_several_readings_and_a_custom_pattern() -> None:
    table = "outlet volts amps\n1 229.8 0.10\n2 230.1 1.5e-1\n"
    driver = CommandPower(
        on_command=OK,
        off_command=OK,
        read_command=prints(table),
        read_pattern=r"(?m)^\d+ (?P<voltage>\S+) (?P<current>\S+)$",
    )
    with serve(driver) as power:
        assert [(r.voltage, r.current) for r in power.read()] == [(229.8, 0.10), (230.1, 0.15)]
        result = CliRunner().invoke(power.cli(), ["read", "--count", "3", "--interval", "0"])
        assert result.exit_code == 0
        assert result.output.splitlines() == [
            "voltage=229.8 V  current=0.1 A  apparent_power=22.98 VA",
            "voltage=230.1 V  current=0.15 A  apparent_power=34.515 VA",
            "voltage=229.8 V  current=0.1 A  apparent_power=22.98 VA",
        ]


def test_output_that_says_nothing_usable_is_an_error() -> None:
    driver = CommandPower(
        on_command=OK,
        off_command=OK,
        read_command=prints("PDU busy, try later\n"),
        state_command=prints("outlet state unknown\n"),
    )
    with serve(driver) as power:
        with pytest.raises(DriverError) as caught:
            list(power.read())
        assert str(caught.value) == (
            "read_command printed 'PDU busy, try later', where read_pattern finds no reading: "
            "fix read_pattern (a regular expression with the groups voltage and current)"
        )
        with pytest.raises(DriverError) as caught:
            power.state()
        assert str(caught.value) == (
            "state_command printed 'outlet state unknown', which says neither on nor off: "
            "it should print the word on or the word off"
        )
    both = CommandPower(on_command=OK, off_command=OK, state_command=prints("on: 1, off: 3"))
    with serve(both) as power, pytest.raises(DriverError, match="which says both on and off"):
        power.state()


def test_without_read_or_state_commands_those_are_not_implemented() -> None:
    with serve(CommandPower(on_command=OK, off_command=OK)) as power:
        with pytest.raises(MeasurementNotSupported) as caught:
            list(power.read())
        assert (
            str(caught.value)
            == "the power driver cannot measure voltage or current: CommandPower has no read_command in its config"
        )
        with pytest.raises(StateNotSupported) as caught:
            power.state()
        assert str(caught.value) == (
            "the power driver cannot tell whether the power is on: CommandPower has no state_command in its config"
        )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"on_command": []}, "on_command is empty: name the program to run and its arguments"),
        ({"on_command": ""}, "on_command is empty"),
        ({"off_command": "pductl 'unbalanced"}, 'off_command "pductl \'unbalanced" cannot be split into arguments'),
        ({"on_command": ["pductl", 3]}, "on_command must be a list of arguments or a command line as text"),
        (
            {"read_pattern": "(?P<voltage>x)"},
            "read_pattern needs the named groups (?P<voltage>...) and (?P<current>...",
        ),
        ({"read_pattern": "(unclosed"}, "read_pattern is not a regular expression: missing ), unterminated subpattern"),
        ({"timeout": 0}, "timeout must be a number of seconds above 0, not 0"),
        ({"env": {"RETRIES": 3}}, "env must map names to text values (quote numbers)"),
    ],
)
def test_bad_settings_are_refused_when_the_driver_is_created(config: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        CommandPower(**{"on_command": OK, "off_command": OK, **config})


def test_cli(pductl: Pductl) -> None:
    with serve(outlet(5)) as power:
        cli = power.cli()
        runner = CliRunner()
        assert runner.invoke(cli, ["on"]).output == "power on\n"
        assert runner.invoke(cli, ["state"]).output == "on\n"
        result = runner.invoke(cli, ["read", "-n", "2", "-i", "0"])
        assert (result.exit_code, result.output) == (
            0,
            "voltage=230.5 V  current=0.25 A  apparent_power=57.625 VA\n" * 2,
        )
        assert runner.invoke(cli, ["cycle", "-w", "0"]).output == "power cycled (off for 0 s)\n"
        assert runner.invoke(cli, ["off"]).output == "power off\n"
        assert runner.invoke(cli, ["state"]).output == "off\n"
    assert pductl.calls() == [
        "--outlet 5 on",
        "--outlet 5 status",
        "--outlet 5 measure",
        "--outlet 5 measure",
        "--outlet 5 off",
        "--outlet 5 on",
        "--outlet 5 off",
        "--outlet 5 status",
    ]
    assert os.environ["PATH"].startswith(str(pductl.directory))
