"""`jmp`'s plug-in commands: click commands that other distributions register as entry points.

A distribution adds a subcommand to `jmp` by listing it in the ``jumpstarter.cli`` group of its
``pyproject.toml``:

    [project.entry-points."jumpstarter.cli"]
    router = "jumpstarter_controller.cli:router"

The installed entry points are looked up only when `jmp` is asked for a command it does not
have itself, or lists its commands (``jmp --help``): ``jmp shell`` and ``j`` never pay for the
scan, nor for importing a plug-in. A command the core knows of (``jmp controller``) but whose
distribution is missing says which one to install; a plug-in that fails to import says so in
one line, naming its distribution, instead of a traceback.
"""

from __future__ import annotations

import importlib.metadata
from typing import Any, NoReturn

import click

from jumpstarter.cli.output import Program
from jumpstarter.registry import install_hint

__all__ = ["KNOWN_PLUGINS", "PLUGIN_ENTRY_POINT_GROUP", "PluginProgram"]

PLUGIN_ENTRY_POINT_GROUP = "jumpstarter.cli"

# The plug-in commands of the project's own distributions: `jmp NAME` without them names what to install.
KNOWN_PLUGINS = {
    "controller": "jumpstarter-controller",
    "router": "jumpstarter-controller",
    "admin": "jumpstarter-controller",
}


def _entry_points() -> dict[str, importlib.metadata.EntryPoint]:
    # First come, first served: the entry points of the distribution found first on sys.path.
    found: dict[str, importlib.metadata.EntryPoint] = {}
    for entry in importlib.metadata.entry_points(group=PLUGIN_ENTRY_POINT_GROUP):
        found.setdefault(entry.name, entry)
    return found


def _distribution(entry: importlib.metadata.EntryPoint) -> str:
    distribution = getattr(entry, "dist", None)
    return distribution.name if distribution is not None else "an unknown distribution"


def _unusable(name: str, message: str, summary: str) -> click.Command:
    """A stand-in for a command that cannot run: invoked with any arguments (even --help), it says why."""

    def fail(arguments: tuple[str, ...]) -> NoReturn:
        raise click.ClickException(message)

    return click.Command(
        name,
        callback=fail,
        params=[click.Argument(["arguments"], nargs=-1, type=click.UNPROCESSED)],
        help=summary,
        short_help=summary,
        add_help_option=False,
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


class PluginProgram(Program):
    """A `Program` that also offers the commands registered in ``jumpstarter.cli``, loaded when needed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_entry_points()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        entry = _entry_points().get(cmd_name)
        if entry is None:
            distribution = KNOWN_PLUGINS.get(cmd_name)
            if distribution is None:
                return None
            try:
                version = importlib.metadata.version(distribution)
            except importlib.metadata.PackageNotFoundError:
                message = f"which is not installed; {install_hint(distribution)}"
            else:  # an older release, from before the command
                message = f"but the installed {distribution} {version} does not have it; upgrade it"
            return _unusable(
                cmd_name,
                f"'{ctx.command_path} {cmd_name}' comes with the {distribution} distribution, {message}",
                f"(not installed: {distribution})",
            )
        return self._load(ctx, cmd_name, entry)

    def _load(self, ctx: click.Context, name: str, entry: importlib.metadata.EntryPoint) -> click.Command:
        distribution = _distribution(entry)
        try:
            loaded: Any = entry.load()
        except Exception as problem:  # any import-time failure of someone else's code: reported, not raised
            reason = f"{type(problem).__name__}: {problem}".splitlines()[0]
            return _unusable(
                name,
                f"the command '{ctx.command_path} {name}' of {distribution} ({entry.value}) cannot be loaded: "
                f"{reason}; reinstall {distribution}, or uninstall it",
                f"(cannot be loaded: {type(problem).__name__})",
            )
        if not isinstance(loaded, click.Command):
            return _unusable(
                name,
                f"the command '{ctx.command_path} {name}' of {distribution} ({entry.value}) is "
                f"{type(loaded).__name__}, not a click command; report it to {distribution}'s authors",
                "(cannot be loaded: not a click command)",
            )
        return loaded
