"""docs/reference/command-line.md lists every option of every `jmp` command, and none it lacks.

Each command with options has a heading of its own (``## `jmp controller run` `` or ``### `jmp
admin create` ``) followed by a table whose header is ``| Option | Meaning |``; its first column
names the options (```-l`, `--selector KEY=VALUE` ``). The commands are read from the real
`jmp` (plug-ins included), so an option added to the CLI and not to the reference fails here.
Hidden options (the original's, refused with advice) must be named somewhere in their command's
section instead; `jmp`'s own (``--version``) in the introduction.
"""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from jumpstarter.cli.jmp import main

PAGE = Path(__file__).resolve().parents[2] / "docs" / "reference" / "command-line.md"
HEADING = re.compile(r"^#{2,4} `(jmp [a-z -]+)`$")
OPTION = re.compile(r"`(--?[a-zA-Z][\w-]*)")
# `jmp run` is `jmp exporter run` under the original's name: the reference says so instead of a second table.
ALIASES = {"jmp run": ("jmp exporter run", {"--config": "--exporter-config"})}


def sections() -> dict[str, list[str]]:
    """Each command heading's lines, up to the next heading of any command or level."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in PAGE.read_text().splitlines():
        if line.startswith("#"):
            match = HEADING.match(line)
            current = found.setdefault(match.group(1), []) if match else None
        elif current is not None:
            current.append(line)
    return found


def documented(lines: list[str]) -> set[str]:
    """The options in the first column of the section's ``| Option | Meaning |`` table."""
    options: set[str] = set()
    in_table = False
    for line in lines:
        if line.startswith("| Option |"):
            in_table = True
        elif in_table and line.startswith("|"):
            options.update(OPTION.findall(line.split("|")[1]))
        else:
            in_table = False
    return options


def commands() -> dict[str, click.Command]:
    """Every `jmp` command by its path (an alias once, under the name listed first)."""
    found: dict[str, click.Command] = {}
    seen: set[int] = set()

    def walk(command: click.Command, path: str, ctx: click.Context) -> None:
        if id(command) in seen:
            return
        seen.add(id(command))
        found[path] = command
        if isinstance(command, click.Group):
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None, f"{path} {name} cannot be loaded"
                walk(sub, f"{path} {name}", click.Context(sub, parent=ctx, info_name=name))

    walk(main, "jmp", click.Context(main, info_name="jmp"))
    return found


def options(command: click.Command, *, hidden: bool = False) -> set[str]:
    return {
        name
        for parameter in command.params
        if isinstance(parameter, click.Option) and parameter.hidden == hidden
        for name in (*parameter.opts, *parameter.secondary_opts)
    }


ALL = commands()
WITH_OPTIONS = sorted(path for path, command in ALL.items() if options(command) and path not in {*ALIASES, "jmp"})


def test_the_commands_are_found() -> None:  # plug-ins too: the controller's commands are installed here
    assert {"jmp shell", "jmp exporter run", "jmp controller run", "jmp admin create", "jmp create lease"} <= set(ALL)


@pytest.mark.parametrize("path", WITH_OPTIONS)
def test_the_reference_lists_each_option_of_the_command(path: str) -> None:
    section = sections().get(path)
    assert section is not None, f"command-line.md has no heading `{path}` with an | Option | Meaning | table"
    in_cli, in_docs = options(ALL[path]), documented(section)
    assert in_cli - in_docs == set(), f"{path}: options missing from the reference's table"
    assert in_docs - in_cli == set(), f"{path}: the reference lists options the command does not have"
    text = "\n".join(section)
    assert {name for name in options(ALL[path], hidden=True) if f"`{name}" not in text} == set(), (
        f"{path}: hidden options the section does not mention"
    )


def test_every_command_heading_is_a_real_command() -> None:
    assert set(sections()) - set(ALL) == set()


def test_jmp_s_own_options_are_in_the_introduction() -> None:
    assert options(ALL["jmp"]) == {"--version"}
    assert "`jmp --version`" in PAGE.read_text()


@pytest.mark.parametrize("path", sorted(ALIASES))
def test_an_alias_takes_the_options_of_the_command_it_stands_for(path: str) -> None:
    target, renamed = ALIASES[path]
    assert options(ALL[path]) == {renamed.get(name, name) for name in options(ALL[target])}
    assert f"`{path} {renamed['--config']}" in PAGE.read_text()
