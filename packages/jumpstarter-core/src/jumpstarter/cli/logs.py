"""Log records on a terminal: what `jmp shell` and `j` print on stderr.

On a terminal (stderr is a TTY, ``NO_COLOR`` is unset and ``TERM`` is not ``dumb``) a
record is a line with the time, the level in colour and the logger's short name; anywhere
else it is a plain ``LEVEL name: message`` line, easy to grep. Continuation lines of a
message (a traceback, say) are indented under it.

Short names drop the prefixes every jumpstarter logger shares: the drivers of a local
session log as ``jumpstarter.drivers.<Class>`` (shown ``<Class>``), and the records a client
relays from a remote exporter as ``jumpstarter.remote.driver.<Class>`` (shown ``<Class>``
too) or ``jumpstarter.remote.<source>`` (shown ``system``, or ``driver`` when the exporter,
such as the original's, does not name the driver's class).

`configure_terminal_logging` installs one handler on the root logger (calling it again
replaces it) at the level of a command's ``--log-level``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from typing import IO, Any, TypeVar

import click

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

# Longest first: a relayed driver record shows its class's name, as in local mode.
_SHORTENED_PREFIXES = ("jumpstarter.remote.driver.", "jumpstarter.remote.", "jumpstarter.drivers.")

_LEVEL_STYLES: dict[str, dict[str, Any]] = {
    "DEBUG": {"fg": "bright_black"},
    "INFO": {"fg": "blue"},
    "WARNING": {"fg": "yellow", "bold": True},
    "ERROR": {"fg": "red", "bold": True},
    "CRITICAL": {"fg": "white", "bg": "red", "bold": True},
}

F = TypeVar("F", bound=Callable[..., Any])


def log_level_option(help: str = "Show log records of this level and above.") -> Callable[[F], F]:
    """The ``--log-level`` option (case-insensitive level name, None when not given)."""
    return click.option(
        "--log-level",
        type=click.Choice(LEVELS, case_sensitive=False),
        default=None,
        metavar="LEVEL",
        help=f"{help} One of {', '.join(LEVELS)}.",
    )


def short_name(name: str) -> str:
    for prefix in _SHORTENED_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def use_color(stream: IO[str]) -> bool:
    """Whether `stream` is a terminal that wants colours."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class TerminalFormatter(logging.Formatter):
    """``LEVEL name: message``; with colours and the time on a terminal."""

    def __init__(self, color: bool) -> None:
        super().__init__()
        self.color = color

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message = f"{message}\n{self.formatException(record.exc_info)}"
        if record.stack_info:
            message = f"{message}\n{self.formatStack(record.stack_info)}"
        first, *rest = message.rstrip("\n").split("\n") or [""]
        name = short_name(record.name)
        if self.color:
            stamp = click.style(time.strftime("%H:%M:%S", time.localtime(record.created)), dim=True)
            level = click.style(f"{record.levelname:<8}", **_LEVEL_STYLES.get(record.levelname, {}))
            line = f"{stamp} {level} {click.style(name, bold=True)}: {first}"
        else:
            line = f"{record.levelname} {name}: {first}"
        return "\n".join([line, *(f"  {continuation}" for continuation in rest)])


class TerminalHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes records to stderr (the one of the moment: tests and tools replace it)."""

    def __init__(self, stream: IO[str] | None = None, color: bool | None = None) -> None:
        super().__init__(stream)
        self._fixed_stream = stream is not None
        self.setFormatter(TerminalFormatter(use_color(self.stream) if color is None else color))

    def emit(self, record: logging.LogRecord) -> None:
        if not self._fixed_stream:
            self.stream = sys.stderr
        super().emit(record)


def configure_terminal_logging(
    level: str | int, *, stream: IO[str] | None = None, color: bool | None = None
) -> TerminalHandler:
    """Print the records of `level` and above on stderr (or `stream`); return the handler.

    Sets the root logger's level, so that libraries' records (those of drivers in a local
    session too) reach the handler. Replaces the handler of an earlier call.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, TerminalHandler):
            root.removeHandler(handler)
    handler = TerminalHandler(stream, color)
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}: use one of {', '.join(LEVELS)}")
    handler.setLevel(numeric)
    root.setLevel(numeric)
    # Records relayed from an exporter go to jumpstarter.remote.*: they follow the same level.
    logging.getLogger("jumpstarter.remote").setLevel(numeric)
    root.addHandler(handler)
    return handler
