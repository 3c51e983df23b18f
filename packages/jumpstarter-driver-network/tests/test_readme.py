"""The package README: its configurations build, its example runs, its tables match the code."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from jumpstarter_driver_network import driver as drivers

from jumpstarter.config.exporter import parse_exporter_config
from jumpstarter.driver import Driver
from jumpstarter.testing import serve

README = Path(__file__).resolve().parents[1] / "README.md"
TEXT = README.read_text()
DRIVERS = [drivers.TcpNetwork, drivers.UdpNetwork, drivers.UnixNetwork, drivers.EchoNetwork]


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", TEXT, flags=re.M | re.S)


def section(title: str) -> str:
    """The text of the README's section `### title`, up to the next heading of its level or above."""
    match = re.search(rf"^### {title}\n(.*?)(?=^##)", TEXT, flags=re.M | re.S)
    assert match, f"no section {title!r}"
    return match.group(1)


@pytest.mark.parametrize("yaml", blocks("yaml"), ids=lambda text: text.split("type: ")[1].split()[0])
def test_configurations_build(yaml: str) -> None:
    root = parse_exporter_config(yaml, name="README.md").build()
    assert root.children
    for child in root.children.values():
        assert type(child) in DRIVERS


def test_every_driver_has_a_configuration() -> None:
    documented = {re.search(r"type: (\w+)", yaml).group(1) for yaml in blocks("yaml")}  # type: ignore[union-attr]
    assert documented == {cls.__name__ for cls in DRIVERS}


@pytest.mark.parametrize("cls", DRIVERS, ids=lambda cls: cls.__name__)
def test_parameter_tables_list_exactly_the_settings(cls: type[Driver]) -> None:
    base = {field.name for field in dataclasses.fields(Driver)}
    settings = {field.name for field in dataclasses.fields(cls) if field.init and field.name not in base}
    documented = set(re.findall(r"^\| `(\w+)` \|", section(cls.__name__), flags=re.M))
    assert documented == settings


def test_command_table_lists_exactly_the_commands() -> None:
    with serve(drivers.EchoNetwork()) as client:
        commands = set(client.cli().commands)
    table = TEXT.split("## Command line", 1)[1].split("\n## ", 1)[0]
    assert set(re.findall(r"^\| `([\w-]+)` \|", table, flags=re.M)) == commands


def test_the_self_contained_example_runs() -> None:
    (example,) = [code for code in blocks("python") if "with serve(" in code]
    exec(compile(example, str(README), "exec"), {"__name__": "readme_example"})
