"""`jmp`'s plug-in commands (entry-point group ``jumpstarter.cli``): found, loaded lazily, or explained.

The tests change what is installed without touching the environment: a ``*.dist-info`` directory
on PYTHONPATH comes before site-packages, and `importlib.metadata` takes a distribution's entry
points from the first copy it finds, so a stand-in ``jumpstarter_controller`` hides the real one.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest


def install(directory: Path, distribution: str, entry_points: dict[str, str], modules: dict[str, str]) -> Path:
    """A distribution of `entry_points` (``jumpstarter.cli``) and `modules` in `directory`, for PYTHONPATH."""
    info = directory / f"{distribution.replace('-', '_')}-9.9.9.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 9.9.9\n")
    lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
    (info / "entry_points.txt").write_text(f"[jumpstarter.cli]\n{lines}")
    for name, source in modules.items():
        (directory / f"{name}.py").write_text(textwrap.dedent(source))
    return directory


@pytest.fixture
def plugins(tmp_path: Path) -> Path:
    """A stand-in jumpstarter-controller with a good, a broken and a wrong command; its imports leave a mark."""
    marks = tmp_path / "imported"
    return install(
        tmp_path / "site",
        "jumpstarter-controller",
        {
            "hello": "jmptest_hello:hello",
            "broken": "jmptest_broken:command",
            "notacommand": "jmptest_hello:NOT_A_COMMAND",
        },
        {
            "jmptest_hello": f"""
                import click, pathlib
                pathlib.Path({str(marks)!r}).open("a").write("hello\\n")
                NOT_A_COMMAND = 42

                @click.command()
                @click.argument("name")
                def hello(name):
                    '''Greet NAME.'''
                    click.echo(f"hello {{name}}")
            """,
            "jmptest_broken": """
                import jmptest_no_such_module
            """,
        },
    )


def test_a_plugin_command_runs_and_is_listed(commands: Any, plugins: Path) -> None:
    result = commands.run("jmp", "hello", "world", PYTHONPATH=str(plugins))
    assert (result.returncode, result.stdout) == (0, "hello world\n"), result
    listing = commands.run("jmp", "--help", PYTHONPATH=str(plugins))
    assert listing.returncode == 0, listing
    assert "hello        Greet NAME." in listing.stdout
    assert "broken       (cannot be loaded: ModuleNotFoundError)" in listing.stdout


def test_other_commands_do_not_load_plugins(commands: Any, plugins: Path, tmp_path: Path) -> None:
    result = commands.run("jmp", "driver", "list", PYTHONPATH=str(plugins))
    assert result.returncode == 0, result
    assert not (tmp_path / "imported").exists()


@pytest.mark.parametrize("arguments", [(), ("--help",), ("run", "--listen", "x")])
def test_a_broken_plugin_is_one_line(commands: Any, plugins: Path, arguments: tuple[str, ...]) -> None:
    result = commands.run("jmp", "broken", *arguments, PYTHONPATH=str(plugins))
    assert result.returncode == 1, result
    assert result.stderr == (
        "jmp: error: the command 'jmp broken' of jumpstarter-controller (jmptest_broken:command) cannot be loaded: "
        "ModuleNotFoundError: No module named 'jmptest_no_such_module'; reinstall jumpstarter-controller, "
        "or uninstall it\n"
    )
    assert result.stdout == ""


def test_an_entry_point_that_is_no_command(commands: Any, plugins: Path) -> None:
    result = commands.run("jmp", "notacommand", PYTHONPATH=str(plugins))
    assert result.returncode == 1, result
    assert result.stderr.startswith(
        "jmp: error: the command 'jmp notacommand' of jumpstarter-controller (jmptest_hello:NOT_A_COMMAND) is int, "
    )
    assert "is int, not a click command" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_a_known_command_names_its_distribution(commands: Any, tmp_path: Path) -> None:
    # A stand-in without entry points hides the real distribution's. (Without the distribution at all:
    # tests/plugins/test_our_wheels.py, in an environment of the core alone.)
    site = install(tmp_path / "site", "jumpstarter-controller", {}, {})
    (site / "jumpstarter_controller-9.9.9.dist-info" / "entry_points.txt").unlink()
    result = commands.run("jmp", "router", "run", "--listen", "127.0.0.1:1", PYTHONPATH=str(site))
    assert result.returncode == 1, result
    # The version the stand-in claims: the distribution is there, without the command.
    assert result.stderr == (
        "jmp: error: 'jmp router' comes with the jumpstarter-controller distribution, but the installed "
        "jumpstarter-controller 9.9.9 does not have it; upgrade it\n"
    )


def test_an_unknown_command(commands: Any) -> None:
    result = commands.run("jmp", "routr")
    assert result.returncode == 2, result
    assert result.stderr == "jmp: error: No such command 'routr'. (see 'jmp --help')\n"
