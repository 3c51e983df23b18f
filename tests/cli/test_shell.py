"""`jmp shell`: local mode, --host, exit codes, signals, logs."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from jumpstarter.driver import Composite


def test_a_driver_command_runs_and_its_output_shows(commands: Any, config: Path) -> None:
    result = commands.run("jmp", "shell", "--exporter-config", config, "--", "j", "power", "on")
    assert result.returncode == 0, result
    assert result.stdout == "switched on\n"
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("script", "code"),
    [
        ("j power on", 0),
        ("j power fail", 1),
        ("j power no-such-command", 2),
        ("exit 42", 42),
        ("kill -TERM $$", 128 + signal.SIGTERM),
        ("kill -KILL $$", 128 + signal.SIGKILL),
    ],
    ids=["success", "failing-driver-call", "usage-error", "exit-42", "killed-by-sigterm", "killed-by-sigkill"],
)
def test_the_exit_code_is_the_commands(commands: Any, config: Path, script: str, code: int) -> None:
    result = commands.run("jmp", "shell", "--exporter-config", config, "--", "sh", "-c", script)
    assert result.returncode == code, result


def test_a_failing_driver_call_is_one_line(commands: Any, config: Path, tmp_path: Path) -> None:
    # The shell's stderr also holds the exporter's log of the failure: look at j's own.
    result = commands.run("jmp", "shell", "--exporter-config", config, "--", "sh", "-c", "j power fail 2>j.err")
    assert result.returncode == 1, result
    assert (tmp_path / "j.err").read_text() == "j: error: the relay is stuck\n"
    # The exporter logged it, with the driver's traceback, for whoever debugs the driver.
    assert "WARNING jumpstarter.exporter.session: Power.fail() raised RuntimeError: the relay is stuck" in result.stderr


def test_the_session_lives_as_long_as_the_shell(commands: Any, config: Path, journal: Path) -> None:
    script = "j power state && j power on && j power state"
    result = commands.run("jmp", "shell", "--exporter-config", config, "--", "sh", "-c", script)
    assert result.returncode == 0, result
    assert result.stdout == "off\nswitched on\non\n"
    # One session: the drivers were reset once and closed once, around every command.
    assert journal.read_text() == "reset\nclose\n"


def test_driver_logs_reach_the_shells_stderr(commands: Any, config: Path) -> None:
    script = "j power on && j power warn 'fan is loud'"
    result = commands.run("jmp", "shell", "--exporter-config", config, "--", "sh", "-c", script)
    assert result.returncode == 0, result
    # Plain lines when stderr is not a terminal, from reset() to close().
    lines = result.stderr.splitlines()
    assert lines == [
        "INFO Power: relay ready",
        "INFO Power: power is on",
        "WARNING Power: fan is loud",
        "INFO Power: relay released",
    ]


def test_log_level_hides_what_is_below_it(commands: Any, config: Path) -> None:
    script = "j power on && j power warn 'fan is loud'"
    result = commands.run(
        "jmp", "shell", "--exporter-config", config, "--log-level", "warning", "--", "sh", "-c", script
    )
    assert result.returncode == 0, result
    assert result.stderr == "WARNING Power: fan is loud\n"


def test_the_command_gets_the_exporter_and_the_client_classes(commands: Any, config: Path) -> None:
    script = 'printf "%s\\n" "$JUMPSTARTER_HOST" "$JMP_DRIVERS_ALLOW" "${JMP_TOKEN-unset}"'
    result = commands.run(
        "jmp", "shell", "--exporter-config", config, "--", "sh", "-c", script,
        JMP_DRIVERS_ALLOW="mine.*", JMP_TOKEN="for-another-exporter",
    )  # fmt: skip
    assert result.returncode == 0, result
    host, allow, token = result.stdout.splitlines()
    assert host.endswith(".sock") and os.path.isabs(host)
    assert not os.path.exists(host)  # removed with the session
    # What was allowed before, then exactly the client classes of the tree (composite's too).
    assert allow.split(",")[0] == "mine.*"
    assert "jmpcli_drivers.PowerClient" in allow.split(",")
    assert token == "unset"  # a local session needs no credentials: none are passed on


def test_interactive_mode_runs_shell_with_a_banner(commands: Any, config: Path, write: Any) -> None:
    fake_shell = write("fake-shell", "#!/bin/sh\nj power on\nexit 5\n")
    fake_shell.chmod(0o755)
    result = commands.run("jmp", "shell", "--exporter-config", config, SHELL=str(fake_shell))
    assert result.returncode == 5, result
    assert result.stdout == "switched on\n"
    banners = [line for line in result.stderr.splitlines() if line.startswith("jmp shell: ")]
    assert len(banners) == 1 and banners[0].startswith("jmp shell: exporter bench-7 ") and "exit" in banners[0]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "metadata: {name: x}\nexport:\n  power:\n    type: jmpcli_drivers.Power\n    config: {stat: 1}\n",
            "bad.yaml:5:14: at export.power.config.stat: unknown key 'stat' in the config of Power",
        ),
        ("metadata: {name: x}\nexport: [\n", "bad.yaml:3:1: not valid YAML"),
        ("metadata: {name: x}\nexport:\n  power: {type: NoSuchDriver}\n", "bad.yaml:3:"),
    ],
    ids=["unknown-key", "not-yaml", "unknown-driver"],
)
def test_a_malformed_config_is_located(commands: Any, write: Any, text: str, message: str) -> None:
    write("bad.yaml", text)
    result = commands.run("jmp", "shell", "--exporter-config", "bad.yaml", "--", "j", "power", "on")
    assert result.returncode == 2, result
    assert result.stderr.startswith(message), result
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_a_missing_config_file(commands: Any) -> None:
    result = commands.run("jmp", "shell", "--exporter-config", "nowhere.yaml", "--", "true")
    assert (result.returncode, result.stderr) == (2, "nowhere.yaml: cannot be read: No such file or directory\n")


@pytest.mark.parametrize(
    "arguments",
    [[], ["--exporter-config", "a.yaml", "--host", "h:1"], ["--exporter-config", "a.yaml", "--insecure"]],
    ids=["no-exporter", "two-exporters", "credentials-in-local-mode"],
)
def test_usage_errors(commands: Any, arguments: list[str]) -> None:
    result = commands.run("jmp", "shell", *arguments, "--", "true")
    assert result.returncode == 2, result
    assert "Error: " in result.stderr and "Traceback" not in result.stderr


def test_a_command_that_does_not_exist(commands: Any, config: Path) -> None:
    result = commands.run("jmp", "shell", "--exporter-config", config, "--", "no-such-command-here")
    assert result.returncode == 127, result
    assert "jmp shell: error: no-such-command-here: command not found" in result.stderr


def test_drivers_that_fail_to_start(commands: Any, config: Path, journal: Path) -> None:
    config.write_text(config.read_text() + "      broken: true\n")
    result = commands.run("jmp", "shell", "--exporter-config", config, "--", "echo", "never")
    assert result.returncode == 1, result
    assert result.stderr.splitlines() == [
        "INFO Power: relay released",
        "jmp shell: error: the exporter bench-7 did not start: OSError: the relay does not answer",
    ]
    assert result.stdout == ""
    assert journal.read_text() == "reset\nclose\n"  # closed all the same


@pytest.mark.parametrize(
    ("signals", "script", "code"),
    [
        ([signal.SIGTERM], "exec sleep 60", 128 + signal.SIGTERM),
        ([signal.SIGINT], "exec sleep 60", 128 + signal.SIGINT),
        ([signal.SIGHUP], "exec sleep 60", 128 + signal.SIGHUP),
        # A command that ignores the signal is killed when it comes again.
        ([signal.SIGTERM, signal.SIGTERM], "trap '' TERM; while :; do sleep 0.05; done", 128 + signal.SIGKILL),
    ],
    ids=["sigterm", "sigint", "sighup", "ignored-then-killed"],
)
def test_a_signal_stops_the_command_then_the_exporter(
    commands: Any, config: Path, journal: Path, signals: list[int], script: str, code: int
) -> None:
    shell = commands.start(
        "jmp", "shell", "--exporter-config", config, "--", "sh", "-c", f"echo $JUMPSTARTER_HOST; {script}"
    )
    shell.wait_for(lambda stdout, stderr: stdout.endswith("\n"))
    socket = shell.output()[0].strip()
    assert os.path.exists(socket)
    for signum in signals:
        os.kill(shell.pid, signum)
        time.sleep(0.2)  # two signals sent at once would arrive as one
    result = shell.finish(timeout=10)
    assert result.returncode == code, result
    assert journal.read_text() == "reset\nclose\n"  # the drivers were closed...
    assert not os.path.exists(os.path.dirname(socket))  # ...and the socket removed
    assert "Traceback" not in result.stderr


def test_host_with_a_unix_socket(commands: Any, test_drivers: Any, exporter: Any, write: Any) -> None:
    power = test_drivers.Power()
    write("token", "s3cret-token\n")
    with exporter(Composite(children={"power": power})) as socket:
        script = 'j power on && j power state && test "$JMP_TOKEN" = s3cret-token && echo "$JUMPSTARTER_HOST"'
        result = commands.run(
            "jmp", "shell", "--host", socket, "--token-file", "token", "--", "sh", "-c", script,
            JMP_DRIVERS_ALLOW="jmpcli_drivers.*",
        )  # fmt: skip
    assert result.returncode == 0, result
    assert result.stdout == f"switched on\non\n{socket}\n"
    assert power.state == "on"  # the very driver served here
    # The exporter's records arrive through the log stream (their source is all they say).
    assert "INFO Power: power is on" in result.stderr.splitlines()
    assert "s3cret" not in result.stderr


def test_host_that_cannot_be_reached(commands: Any, tmp_path: Path) -> None:
    result = commands.run("jmp", "shell", "--host", tmp_path / "nothing.sock", "--", "true")
    assert result.returncode == 3, result
    assert result.stderr.startswith(f"jmp shell: error: cannot reach the exporter at {tmp_path / 'nothing.sock'}")
    assert len(result.stderr.splitlines()) == 1


def test_host_with_an_unreadable_token_file(commands: Any, tmp_path: Path) -> None:
    result = commands.run("jmp", "shell", "--host", "localhost:1", "--token-file", "absent", "--", "true")
    assert (result.returncode, result.stderr) == (
        2,
        "jmp shell: error: --token-file absent: No such file or directory\n",
    )
