"""`jmp shell`: local mode, --host, exit codes, signals, logs."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import time
from contextlib import suppress
from pathlib import Path
from typing import Any

import pexpect
import psutil
import pytest

from jumpstarter.driver import Composite
from jumpstarter.exporter import Exporter
from jumpstarter.testing import serve_socket

BIN_DIR = Path(sys.executable).parent


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
    # The exporter logged it too, in one line: no traceback above the user's prompt.
    assert result.stderr.splitlines() == [
        "INFO Power: relay ready",
        "WARNING jumpstarter.exporter.session: Power.fail() raised RuntimeError: the relay is stuck",
        "INFO Power: relay released",
    ], result.stderr


def test_the_drivers_tracebacks_show_at_debug(commands: Any, config: Path, tmp_path: Path) -> None:
    result = commands.run(
        "jmp", "shell", "--exporter-config", config, "--log-level", "DEBUG", "--", "sh", "-c", "j power fail 2>j.err"
    )
    assert result.returncode == 1, result
    assert "Power.fail() raised RuntimeError: the relay is stuck\n  Traceback (most recent call last):" in result.stderr
    assert 'raise RuntimeError("the relay is stuck")' in result.stderr
    # Debugging the drivers, not gRPC's or asyncio's machinery.
    assert "grpc._cython" not in result.stderr and "asyncio" not in result.stderr, result.stderr


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


def test_without_a_command_it_runs_the_users_shell(commands: Any, config: Path, write: Any) -> None:
    fake_shell = write("fake-shell", "#!/bin/sh\nj power on\nexit 5\n")
    fake_shell.chmod(0o755)
    result = commands.run("jmp", "shell", "--exporter-config", config, SHELL=str(fake_shell))
    assert result.returncode == 5, result
    assert result.stdout == "switched on\n"
    # Its input is not a terminal: nobody would read a banner (tests/test_readme.py shows it at one).
    assert not [line for line in result.stderr.splitlines() if line.startswith("jmp:")], result.stderr


def test_the_environments_j_without_activating_it(commands: Any, config: Path) -> None:
    """`.venv/bin/jmp shell ... -- j power on` from a PATH without the environment."""
    script = "command -v j; command -v python; j power on"
    bare_path = "/usr/local/bin:/usr/bin:/bin"
    result = commands.run(BIN_DIR / "jmp", "shell", "--exporter-config", config, "--", "sh", "-c", script,
                          PATH=bare_path, VIRTUAL_ENV=None)  # fmt: skip
    assert result.returncode == 0, result
    assert result.stdout.splitlines() == [str(BIN_DIR / "j"), str(BIN_DIR / "python"), "switched on"]


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
    assert result.stderr.startswith(f"jmp: error: {message}"), result
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_a_missing_config_file(commands: Any) -> None:
    result = commands.run("jmp", "shell", "--exporter-config", "nowhere.yaml", "--", "true")
    assert (result.returncode, result.stderr) == (
        2,
        "jmp: error: nowhere.yaml: cannot be read: No such file or directory\n",
    )


@pytest.mark.parametrize(
    "arguments",
    [[], ["--exporter-config", "a.yaml", "--host", "h:1"], ["--exporter-config", "a.yaml", "--insecure"]],
    ids=["no-exporter", "two-exporters", "credentials-in-local-mode"],
)
def test_usage_errors(commands: Any, arguments: list[str]) -> None:
    result = commands.run("jmp", "shell", *arguments, "--", "true")
    assert result.returncode == 2, result
    assert result.stderr.startswith("jmp: error: ") and len(result.stderr.splitlines()) == 1, result
    assert "(see 'jmp shell --help')" in result.stderr


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["--exporter-confg", "a.yaml"],
            "no such option --exporter-confg: did you mean --exporter-config or --client-config?",
        ),
        (["--hots", "h:1"], "no such option --hots: did you mean --host?"),
        (["--selector", "board=rpi4"], "the client configuration (the environment) has no endpoint"),
        (["-l", "board=rpi4"], "the client configuration (the environment) has no endpoint"),
        (["--lease", "x"], "the client configuration (the environment) has no endpoint"),
        (["--duration", "1h"], "--duration: say which exporter to lease: --selector KEY=VALUE"),
        (["--duration", "1x", "-l", "a=b"], "Invalid value for '--duration': '1x' is not a duration: write 30m"),
        (["--exporter", "bench"], "--exporter is the original jumpstarter's option: give the configuration's file"),
        (["--tls-grpc", "lab-7:1234"], "--tls-grpc is the original jumpstarter's option: use --host HOST:PORT"),
        (["--tls-grpc-insecure"], "--tls-grpc-insecure is the original jumpstarter's option: use --insecure"),
        (["--passphrase", "s3cret"], "--passphrase is the original jumpstarter's option: put the token in a file"),
    ],
)
def test_unknown_and_the_originals_options_are_named(commands: Any, arguments: list[str], message: str) -> None:
    # Never taken for the command to run (which would say "command not found", exit 127).
    result = commands.run("jmp", "shell", *arguments, "--", "true")
    assert result.returncode == 2, result
    assert result.stderr.startswith(f"jmp: error: {message}"), result
    assert len(result.stderr.splitlines()) == 1 and "s3cret" not in result.stderr


def test_a_command_without_the_double_dash(commands: Any, config: Path) -> None:
    # Options of the command are the command's: only those before it are jmp shell's.
    result = commands.run("jmp", "shell", "--exporter-config", config, "sh", "-c", "echo $0", "--exporter-confg")
    assert (result.returncode, result.stdout) == (0, "--exporter-confg\n"), result


def test_a_command_that_does_not_exist(commands: Any, config: Path) -> None:
    result = commands.run("jmp", "shell", "--exporter-config", config, "--", "no-such-command-here")
    assert result.returncode == 127, result
    assert "jmp: error: no-such-command-here: command not found" in result.stderr


def test_drivers_that_fail_to_start(commands: Any, config: Path, journal: Path) -> None:
    config.write_text(config.read_text() + "      broken: true\n")
    result = commands.run("jmp", "shell", "--exporter-config", config, "--", "echo", "never")
    assert result.returncode == 1, result
    assert result.stderr.splitlines() == [
        "INFO Power: relay released",
        "jmp: error: the exporter bench-7 did not start: OSError: the relay does not answer",
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
    assert result.stderr.startswith(f"jmp: error: cannot reach the exporter at {tmp_path / 'nothing.sock'}")
    assert len(result.stderr.splitlines()) == 1


def test_host_whose_drivers_cannot_start(commands: Any, test_drivers: Any, journal: Path) -> None:
    """An exporter (`jmp exporter run`'s kind: a session per client) whose driver fails its reset: reached, and
    it says why it takes no calls. Exit 1 with the driver's error (not 3, which says the exporter is unreachable)."""

    def tree() -> Composite:
        return Composite(children={"power": test_drivers.Power(journal=str(journal), broken=True)})

    with serve_socket(Exporter(tree)) as socket:
        refused = (
            f"the exporter at {socket}: the exporter could not start its drivers: OSError: the relay does not answer"
        )
        shell = commands.run(
            "jmp", "shell", "--host", socket, "--", "echo", "never", JMP_DRIVERS_ALLOW="jmpcli_drivers.*"
        )
        assert (shell.returncode, shell.stdout, shell.stderr) == (1, "", f"jmp: error: {refused}\n"), shell
        j = commands.run("j", "power", "on", JUMPSTARTER_HOST=socket, JMP_DRIVERS_ALLOW="jmpcli_drivers.*")
        assert (j.returncode, j.stdout, j.stderr) == (1, "", f"j: error: {refused}\n"), j
    assert journal.read_text() == "reset\nclose\n" * 2  # each try reset the drivers, and closed them again


def test_host_with_an_unreadable_token_file(commands: Any, tmp_path: Path) -> None:
    result = commands.run("jmp", "shell", "--host", "localhost:1", "--token-file", "absent", "--", "true")
    assert (result.returncode, result.stderr) == (
        2,
        "jmp: error: --token-file absent: No such file or directory\n",
    )


def test_a_remote_drivers_error_is_one_line_too(commands: Any, test_drivers: Any, exporter: Any) -> None:
    # The exporter sends its record with the traceback in its text; the shell shows the first line.
    with exporter(Composite(children={"power": test_drivers.Power()})) as socket:
        result = commands.run(
            "jmp", "shell", "--host", socket, "--", "sh", "-c", "j power fail 2>/dev/null; echo $?",
            JMP_DRIVERS_ALLOW="jmpcli_drivers.*",
        )  # fmt: skip
    assert (result.returncode, result.stdout) == (0, "1\n"), result
    assert "WARNING system: Power.fail() raised RuntimeError: the relay is stuck" in result.stderr.splitlines()
    assert "Traceback" not in result.stderr


def test_a_background_helper_ends_with_the_interactive_shell(tmp_path: Path) -> None:
    """`j net forward-tcp PORT &` then `exit`: nothing is left holding the port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("PS1='bench$ '\n")
    env = {**os.environ, "HOME": str(home), "SHELL": shutil.which("bash") or "/bin/bash", "TERM": "dumb"}
    config = Path(__file__).resolve().parents[2] / "examples" / "local.yaml"
    shell = pexpect.spawn(str(BIN_DIR / "jmp"), ["shell", "--exporter-config", str(config)], env=env,
                          cwd=str(tmp_path), encoding="utf-8", timeout=30)  # fmt: skip
    helpers: list[psutil.Process] = []
    try:
        shell.expect_exact("bench$ ")
        shell.sendline(f"j net forward-tcp {port} &")
        shell.expect_exact(f"127.0.0.1:{port}")  # it listens
        helpers = [
            process
            for process in psutil.Process(shell.pid).children(recursive=True)
            if "forward-tcp" in " ".join(process.cmdline())
        ]
        assert helpers, "the forward runs"
        shell.sendline("exit")
        shell.expect(pexpect.EOF)
        shell.close()
        assert shell.exitstatus == 0
        _, alive = psutil.wait_procs(helpers, timeout=10)
        assert not alive, "the forward outlived the shell that started it"
        with socket.socket() as again:
            again.bind(("127.0.0.1", port))  # free again
    finally:
        for process in helpers:
            with suppress(psutil.NoSuchProcess):
                process.kill()
        shell.close(force=True)
