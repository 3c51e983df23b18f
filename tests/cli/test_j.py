"""`j`: the driver tree as a command line, its errors, exit codes and completion."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jumpstarter.driver import Composite


@pytest.fixture
def served(test_drivers: Any, exporter: Any) -> Iterator[dict[str, str]]:
    """A tree served from this process; the environment `jmp shell` would give a command."""
    root = Composite(
        description="The bench with the blue cable",
        children={"power": test_drivers.Power(methods_description={"state": "Tell the state"})},
    )
    with exporter(root) as socket:
        yield {"JUMPSTARTER_HOST": socket, "JMP_DRIVERS_ALLOW": "jmpcli_drivers.*"}


def test_help_lists_the_drivers_with_the_configs_descriptions(commands: Any, config: Path) -> None:
    script = "j --help && echo ----- && j power --help"
    result = commands.run("jmp", "shell", "--exporter-config", config, "--", "sh", "-c", script)
    assert result.returncode == 0, result
    root_help, power_help = result.stdout.split("-----\n")
    assert "Usage: j [OPTIONS] COMMAND [ARGS]..." in root_help
    assert "The bench with the blue cable" in root_help
    assert [line.split() for line in root_help.split("Commands:\n")[1].splitlines()] == [
        ["power", "Main", "power", "of", "the", "board"]
    ]
    assert "Main power of the board" in power_help
    # methods_description replaces the docstring of `on`; the other commands keep theirs.
    assert "Turn the board on, firmly" in power_help
    assert "Switch the power on." not in power_help
    assert "Print whether the power is on." in power_help


def test_a_command_and_its_output(commands: Any, served: dict[str, str]) -> None:
    result = commands.run("j", "power", "state", **served)
    assert (result.returncode, result.stdout, result.stderr) == (0, "off\n", "")
    result = commands.run("j", "power", "--help", **served)
    assert "Tell the state" in result.stdout  # methods_description of a driver built in Python


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["power", "explode"], "j: error: No such command 'explode'. (see 'j power --help')"),
        (["power", "warn"], "j: error: Missing argument 'MESSAGE'. (see 'j power warn --help')"),
        (["--log-level", "LOUD", "power"], "j: error: Invalid value for '--log-level': "),
    ],
    ids=["unknown-command", "missing-argument", "bad-log-level"],
)
def test_usage_errors_are_one_line(commands: Any, served: dict[str, str], arguments: list[str], message: str) -> None:
    result = commands.run("j", *arguments, **served)
    assert result.returncode == 2, result
    assert result.stderr.startswith(message) and len(result.stderr.splitlines()) == 1, result


def test_no_command_shows_the_help(commands: Any, served: dict[str, str]) -> None:
    result = commands.run("j", **served)
    assert result.returncode == 2, result  # click's choice for a group called without a command
    assert "Commands:" in result.stderr and "power" in result.stderr


def test_a_failing_call_is_one_line_and_debug_adds_the_traceback(commands: Any, served: dict[str, str]) -> None:
    result = commands.run("j", "power", "fail", **served)
    assert (result.returncode, result.stderr) == (1, "j: error: the relay is stuck\n"), result
    result = commands.run("j", "--log-level", "DEBUG", "power", "fail", **served)
    assert result.returncode == 1, result
    assert "Traceback" in result.stderr and result.stderr.endswith("j: error: the relay is stuck\n")


def test_outside_a_shell(commands: Any) -> None:
    result = commands.run("j", "power", "on", JUMPSTARTER_HOST=None)
    assert result.returncode == 3, result
    assert result.stderr == (
        "j: error: JUMPSTARTER_HOST is not set: run this inside `jmp shell`, or set it to an exporter's "
        "socket path or host:port\n"
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"JUMPSTARTER_HOST": "/nonexistent/session.sock"}, "j: error: cannot reach the exporter at /nonexistent/"),
        (
            {"JUMPSTARTER_HOST": "localhost:1", "JMP_TLS_CA": "/nonexistent/ca.pem"},
            "j: error: JMP_TLS_CA names '/nonexistent/ca.pem', which cannot be read: No such file or directory",
        ),
    ],
    ids=["no-exporter", "unreadable-ca"],
)
def test_an_exporter_that_cannot_be_reached(commands: Any, env: dict[str, str], message: str) -> None:
    result = commands.run("j", "power", "on", **env)
    assert result.returncode == 3, result
    assert result.stderr.startswith(message) and len(result.stderr.splitlines()) == 1, result


def test_a_malformed_client_configuration(commands: Any, served: dict[str, str], write: Any) -> None:
    client_config = write("client.yaml", "drivers:\n  alow: ['x.*']\n")
    result = commands.run("j", "power", "on", JMP_CLIENT_CONFIG=str(client_config), **served)
    assert result.returncode == 2, result
    assert result.stderr.startswith(f"j: error: {client_config}:2:3: at drivers.alow: unknown key 'alow'"), result


def test_a_client_class_that_is_not_allowed(commands: Any, served: dict[str, str]) -> None:
    result = commands.run("j", "power", "on", **{**served, "JMP_DRIVERS_ALLOW": None})
    assert result.returncode == 1, result
    assert result.stderr.startswith("j: error: driver 'power' needs the client class jmpcli_drivers.PowerClient")
    assert "JMP_DRIVERS_ALLOW='jmpcli_drivers.*'" in result.stderr and len(result.stderr.splitlines()) == 1
    # The rest of the tree, and the help, still work.
    result = commands.run("j", "--help", **{**served, "JMP_DRIVERS_ALLOW": None})
    assert result.returncode == 0 and "(unavailable)" in result.stdout, result


def test_interrupted(commands: Any, test_drivers: Any, exporter: Any, tmp_path: Path) -> None:
    journal = tmp_path / "journal"
    with exporter(test_drivers.Power(journal=str(journal))) as socket:
        j = commands.start("j", "hang", JUMPSTARTER_HOST=socket, JMP_DRIVERS_ALLOW="jmpcli_drivers.*")
        deadline = time.monotonic() + 30
        while "hang" not in (journal.read_text() if journal.exists() else ""):  # connected, the driver waiting
            assert time.monotonic() < deadline and j.process.poll() is None, "j did not reach the driver"
            time.sleep(0.02)
        j.process.send_signal(signal.SIGINT)
        result = j.finish(timeout=10)
    assert result.returncode == 130, result
    assert result.stderr == "j: interrupted\n", result


def test_completion(commands: Any, served: dict[str, str]) -> None:
    # The script for the rc file needs no exporter.
    source = commands.run("j", _J_COMPLETE="bash_source", JUMPSTARTER_HOST=None)
    assert source.returncode == 0 and "_j_completion()" in source.stdout and source.stderr == ""

    def complete(words: str, **env: str | None) -> tuple[str, str]:
        cword = str(len(words.split()) - (0 if words.endswith(" ") else 1))
        result = commands.run("j", _J_COMPLETE="bash_complete", COMP_WORDS=words, COMP_CWORD=cword, **env)
        return result.stdout, result.stderr

    assert complete("j po", **served) == ("plain,power\n", "")
    assert complete("j power s", **served) == ("plain,state\n", "")
    # Outside a shell, or with the exporter gone: nothing, and not a word on stderr.
    assert complete("j po", JUMPSTARTER_HOST=None) == ("", "")
    assert complete("j po", JUMPSTARTER_HOST="/nonexistent/session.sock") == ("", "")
