"""Log records on a terminal: what `jmp shell` and `j` print on stderr.

On a terminal (stderr is a TTY, ``NO_COLOR`` is unset and ``TERM`` is not ``dumb``) a
record is a line with the time, the level in colour and the logger's short name; anywhere
else it is a plain ``LEVEL name: message`` line, easy to grep (``jmp exporter run`` adds
the date and time there too: its log outlives the terminal). Continuation lines of a
message are indented under it.

A record's traceback (a driver's error, logged by the exporter with its exception) is
shown only at ``DEBUG``: otherwise the record stays one line, ending with the exception's
class and message, so that an ordinary hardware error does not bury the command's own
one-line error. Records relayed from a remote exporter carry their traceback in their
text; it is cut the same way.

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

# What a relayed record's text holds after its message when the exporter logged an exception.
_TRACEBACK_HEADER = "\nTraceback (most recent call last):"

# Libraries whose DEBUG records are about their own machinery (gRPC's event loop
# bookkeeping, asyncio's selector), not about the drivers: shown from INFO up only.
_QUIET_LIBRARIES = ("asyncio", "grpc")

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
    """``LEVEL name: message``; with colours and the time on a terminal.

    `tracebacks`: show a record's traceback (else one line with the exception's class and
    message). `timestamps`: the date and time on plain lines too.
    """

    def __init__(self, color: bool, *, tracebacks: bool = False, timestamps: bool = False) -> None:
        super().__init__()
        self.color = color
        self.tracebacks = tracebacks
        self.timestamps = timestamps

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if self.tracebacks:
            if record.exc_info:
                message = f"{message}\n{self.formatException(record.exc_info)}"
            if record.stack_info:
                message = f"{message}\n{self.formatStack(record.stack_info)}"
        else:
            message = message.split(_TRACEBACK_HEADER, 1)[0]
            if record.exc_info and record.exc_info[1] is not None:
                message = _with_exception(message, record.exc_info[1])
        first, *rest = message.rstrip("\n").split("\n") or [""]
        name = short_name(record.name)
        if self.color:
            stamp = click.style(time.strftime("%H:%M:%S", time.localtime(record.created)), dim=True)
            level = click.style(f"{record.levelname:<8}", **_LEVEL_STYLES.get(record.levelname, {}))
            line = f"{stamp} {level} {click.style(name, bold=True)}: {first}"
        elif self.timestamps:
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
            line = f"{stamp} {record.levelname} {name}: {first}"
        else:
            line = f"{record.levelname} {name}: {first}"
        return "\n".join([line, *(f"  {continuation}" for continuation in rest)])


def _with_exception(message: str, error: BaseException) -> str:
    """`message`, ending with the exception's class and message unless it says them already."""
    described = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return message if described in message else f"{message}: {described}"


class TerminalHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes records to stderr (the one of the moment: tests and tools replace it)."""

    def __init__(
        self,
        stream: IO[str] | None = None,
        color: bool | None = None,
        *,
        tracebacks: bool = False,
        timestamps: bool = False,
    ) -> None:
        super().__init__(stream)
        self._fixed_stream = stream is not None
        color = use_color(self.stream) if color is None else color
        self.setFormatter(TerminalFormatter(color, tracebacks=tracebacks, timestamps=timestamps))

    def emit(self, record: logging.LogRecord) -> None:
        if not self._fixed_stream:
            self.stream = sys.stderr
        super().emit(record)


def configure_terminal_logging(
    level: str | int, *, stream: IO[str] | None = None, color: bool | None = None, timestamps: bool = False
) -> TerminalHandler:
    """Print the records of `level` and above on stderr (or `stream`); return the handler.

    Sets the root logger's level, so that libraries' records (those of drivers in a local
    session too) reach the handler; tracebacks are shown at DEBUG only. Replaces the
    handler of an earlier call.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, TerminalHandler):
            root.removeHandler(handler)
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}: use one of {', '.join(LEVELS)}")
    handler = TerminalHandler(stream, color, tracebacks=numeric <= logging.DEBUG, timestamps=timestamps)
    handler.setLevel(numeric)
    for library in _QUIET_LIBRARIES:
        logging.getLogger(library).setLevel(max(numeric, logging.INFO))
    root.setLevel(numeric)
    # Records relayed from an exporter go to jumpstarter.remote.*: they follow the same level.
    logging.getLogger("jumpstarter.remote").setLevel(numeric)
    root.addHandler(handler)
    return handler
