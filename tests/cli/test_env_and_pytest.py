"""`jumpstarter.utils.env()` in scripts, and the pytest plugin, inside and outside `jmp shell`."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import pytest

from jumpstarter.utils import env

SCRIPT = """\
import anyio

from jumpstarter.utils import env, env_async

with env() as client:
    client.power.on()
    print("sync:", client.power.state())


async def main():
    async with env_async() as client:
        print("async:", await client.power.call_async("read"))


anyio.run(main)
"""

TESTS = """\
def test_power(jumpstarter_client):
    jumpstarter_client.power.on()
    assert jumpstarter_client.power.state() == "on"


def test_same_session(jumpstarter_client):
    assert jumpstarter_client.power.state() == "on"


def test_without_hardware():
    assert 1 + 1 == 2
"""

PYTEST = ("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_bench.py")


def test_env_in_a_script(commands: Any, config: Path, write: Any) -> None:
    write("script.py", SCRIPT)
    result = commands.run("jmp", "shell", "--exporter-config", config, "--", "python", "script.py")
    assert result.returncode == 0, result
    assert result.stdout == "sync: on\nasync: on\n"


def test_env_outside_a_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JUMPSTARTER_HOST", raising=False)
    with pytest.raises(LookupError, match="JUMPSTARTER_HOST is not set: run this inside `jmp shell`"), env():
        pass


def test_pytest_inside_the_shell(commands: Any, config: Path, write: Any) -> None:
    write("test_bench.py", TESTS)
    result = commands.run("jmp", "shell", "--exporter-config", config, "--", *PYTEST)
    assert result.returncode == 0, result
    assert "3 passed" in result.stdout


def test_pytest_outside_a_shell(commands: Any, write: Any) -> None:
    write("test_bench.py", TESTS)
    result = commands.run(*PYTEST, JUMPSTARTER_HOST=None)
    assert result.returncode == 1, result
    assert "1 passed, 2 errors" in result.stdout
    # One clear line per test that needs the exporter, no traceback of the plugin.
    hint = (
        "run pytest inside jmp shell (jmp shell --exporter-config FILE -- pytest), or lease an exporter from a lab "
        "for the session: pytest --jumpstarter-selector KEY=VALUE"
    )
    assert result.stdout.splitlines().count(hint) == 2, result
    assert "pytest_plugin.py" not in result.stdout


def test_the_plugin_is_registered_and_light(commands: Any) -> None:
    plugins = {entry.name: entry.value for entry in importlib.metadata.entry_points(group="pytest11")}
    assert plugins.get("jumpstarter") == "jumpstarter.pytest_plugin"
    # Loaded by every pytest run of anyone who installed jumpstarter-core: it imports nothing heavy.
    check = (
        "import sys; import jumpstarter.pytest_plugin; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'grpc', 'anyio', 'pydantic', 'google', 'yaml'}), "
        "sorted(m for m in sys.modules if m.startswith('jumpstarter.')))"
    )
    result = commands.run("python", "-c", check)
    assert result.stdout == "[] ['jumpstarter.pytest_plugin']\n", result
