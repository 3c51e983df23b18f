"""jumpstarter.testing's processes and the pytest plugin's fixtures, with real processes and sockets."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from jumpstarter.client import connect
from jumpstarter.driver import Composite, Driver
from jumpstarter.exporter import SingleSession
from jumpstarter.testing import BIN, CommandResult, Commands, group_gone, jmp_environment, sections
from testsupport import SUPPORT
from testsupport.drivers import Named


def test_sections_split_a_script_s_output_by_its_markers() -> None:
    text = "before\n## first\na\nb\n## second\n## first\nc\n"
    assert sections(text) == {"first": ["a", "b", "c"], "second": []}
    assert CommandResult(0, text, "").sections() == sections(text)


def test_the_environment_has_none_of_the_user_s_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("JUMPSTARTER_HOST", "JMP_DRIVERS_ALLOW", "JMP_TOKEN", "JMP_TLS_CA"):
        monkeypatch.setenv(variable, "the user's")
    monkeypatch.setenv("KEPT", "yes")
    env = jmp_environment(tmp_path, COLUMNS="80", KEPT=None)
    assert not {"JUMPSTARTER_HOST", "JMP_DRIVERS_ALLOW", "JMP_TOKEN", "JMP_TLS_CA", "KEPT"} & set(env)
    assert env["PATH"].split(os.pathsep)[0] == str(BIN)
    assert env["XDG_CONFIG_HOME"] == str(tmp_path / "config")
    assert "JMP_CLIENT_CONFIG" not in env  # the client configurations are looked for under XDG_CONFIG_HOME
    assert env["COLUMNS"] == "80"


def test_a_command_that_leaves_a_process_behind_fails(tmp_path: Path) -> None:
    with Commands(tmp_path) as commands:
        process = commands.start("sh", "-c", "sleep 60 & echo started")
        with pytest.raises(AssertionError, match="was left behind"):
            process.finish()
        assert group_gone(process.pid)  # and the stray process was killed


def test_leaving_kills_every_process_group(tmp_path: Path) -> None:
    with Commands(tmp_path) as commands:
        process = commands.start("sh", "-c", "sleep 60 & sleep 60")
        process.wait_for(lambda stdout, stderr: True)
    assert group_gone(process.pid)
    assert process.process.returncode is not None


def test_a_command_that_hangs_fails_after_its_timeout(tmp_path: Path) -> None:
    with Commands(tmp_path) as commands, pytest.raises(AssertionError, match=r"did not finish in 0\.2 s"):
        commands.run("sleep", "60", timeout=0.2)


def test_wait_for_sees_the_output_and_fails_when_the_command_ends_first(tmp_path: Path) -> None:
    with Commands(tmp_path) as commands:
        process = commands.start("sh", "-c", "echo ready; echo oops >&2; sleep 60")
        process.wait_for(lambda stdout, stderr: stdout == "ready\n" and stderr == "oops\n")
        quick = commands.start("true")
        with pytest.raises(AssertionError, match="never happened; exit 0"):
            quick.wait_for(lambda stdout, stderr: "never" in stdout)


def test_jumpstarter_socket_serves_until_the_test_ends(jumpstarter_socket: Callable[[Driver], str]) -> None:
    path = jumpstarter_socket(Composite(children={"named": Named()}))
    with connect(path) as client:
        assert client.named.call("ping") == "pong"
    provider = SingleSession(Named())
    with connect(jumpstarter_socket(provider)) as client:  # a session provider serves too
        assert client.call("click") == "clicked"


def test_j_and_jmp_shell_through_the_fixtures(
    jumpstarter_socket: Callable[[Driver], str], jumpstarter_commands: Commands, tmp_path: Path
) -> None:
    path = jumpstarter_socket(Composite(children={"named": Named()}))
    result = jumpstarter_commands.run("j", "--help", JUMPSTARTER_HOST=path)
    assert result.returncode == 0, result
    assert "named" in result.stdout

    config = tmp_path / "exporter.yaml"
    config.write_text("metadata:\n  name: bench\nexport:\n  named:\n    type: testsupport.drivers.Named\n")
    script = "echo '## host'; test -S \"$JUMPSTARTER_HOST\" && echo socket; echo '## drivers'; j --help | grep -c named"
    result = jumpstarter_commands.shell(config, "sh", "-c", script, PYTHONPATH=str(SUPPORT))
    assert result.returncode == 0, result
    assert result.sections() == {"host": ["socket"], "drivers": ["1"]}
