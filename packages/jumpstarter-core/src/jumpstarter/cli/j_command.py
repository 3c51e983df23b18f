"""The `j` command behind the script `jumpstarter.cli.j`: connect, make the click group of the driver tree, run it."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from contextlib import ExitStack, suppress
from typing import TYPE_CHECKING

import click

from jumpstarter.cli import output
from jumpstarter.cli.logs import LEVELS, configure_terminal_logging
from jumpstarter.cli.short_lived import resume_garbage_collection

if TYPE_CHECKING:
    from jumpstarter.client import DriverClient

PROG_NAME = "j"
COMPLETE_VAR = "_J_COMPLETE"

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 128 + 13  # as if killed by SIGPIPE, like other commands in a pipeline

DEFAULT_LOG_LEVEL = "WARNING"


def run(args: list[str]) -> int:
    """Run ``j`` with `args`; return the exit code."""
    instruction = os.environ.get(COMPLETE_VAR)
    if instruction:
        return _complete(instruction)
    level = _leading_log_level(args)
    debug = level == "DEBUG"
    try:
        return _run(args, level, debug)
    except KeyboardInterrupt:
        return _interrupted()


def _run(args: list[str], level: str, debug: bool) -> int:
    configure_terminal_logging(level)
    if logging.getLevelName(level) > logging.INFO:
        # A driver whose client class cannot be used says why when it is used (or in
        # `j --help`); the shell warned once already. No warning on every command.
        logging.getLogger("jumpstarter.client.tree").setLevel(logging.ERROR)

    from jumpstarter.client import DriverConnectionError, ExporterNotReady
    from jumpstarter.client.connect import connect
    from jumpstarter.config.errors import ConfigError  # not config.yaml: no yaml or pydantic to load
    from jumpstarter.utils.env import endpoint_from_environment

    try:
        endpoint = endpoint_from_environment()
    except LookupError as error:
        return _fail(EXIT_UNREACHABLE, str(error), debug)

    with ExitStack() as stack:
        try:
            # Not attached: no log stream (the shell prints the logs), a short connection.
            client = stack.enter_context(connect(endpoint, attach=False))
        except DriverConnectionError as error:
            return _fail(EXIT_UNREACHABLE, str(error), debug)
        except ExporterNotReady as error:  # reached, and it says why it takes no calls (drivers that did not start)
            return _fail(EXIT_FAILED, str(error), debug)
        except ConfigError as error:  # the client configuration (its allow-list) is wrong
            return _fail(EXIT_USAGE, str(error), debug)
        except Exception as error:
            return _fail(EXIT_UNREACHABLE, f"cannot connect to the exporter: {type(error).__name__}: {error}", debug)
        return _invoke(client, args, debug)
    raise AssertionError("unreachable")  # pragma: no cover - ExitStack swallows nothing here


def _invoke(client: DriverClient, args: list[str], debug: bool) -> int:
    from jumpstarter.client import DriverClientUnavailable, DriverError

    try:
        try:
            group = _root_group(client)
            with group.make_context(PROG_NAME, list(args)) as ctx:
                resume_garbage_collection()  # the command may run long (j serial pipe)
                group.invoke(ctx)
        except (EOFError, KeyboardInterrupt) as error:
            raise click.Abort() from error
        return 0
    except click.exceptions.Exit as exit_:
        return exit_.exit_code
    except _NO_ARGS_IS_HELP as error:
        error.show()
        return EXIT_USAGE
    except click.UsageError as error:
        return _fail(EXIT_USAGE, output.usage_message(error), debug)
    except click.ClickException as error:
        return _fail(error.exit_code, error.format_message(), debug)
    except click.Abort as error:
        if isinstance(error.__cause__, EOFError):
            return _fail(EXIT_FAILED, "aborted: the input ended", debug)
        return _interrupted()
    except DriverClientUnavailable as error:
        return _fail(EXIT_FAILED, str(error), debug)
    except DriverError as error:
        return _fail(EXIT_UNREACHABLE if _lost_exporter(error) else EXIT_FAILED, str(error), debug)
    except BrokenPipeError:
        # Whoever read our output stopped (`j serial pipe | head`): not an error of ours.
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except Exception as error:
        # A client's command failed in its own code: one line, the traceback with DEBUG.
        return _fail(EXIT_FAILED, f"{type(error).__name__}: {error}", debug)


def _root_group(client: DriverClient) -> click.Group:
    group = client.cli()
    group.name = PROG_NAME
    if not client.description:
        group.help = (
            "The drivers of the exporter of this jmp shell: j DRIVER [COMMAND] [ARGS]...\n\n"
            "Run j DRIVER --help for what a driver can do."
        )
    # Read before connecting (see _leading_log_level); declared here for --help and parsing.
    group.params.insert(
        0,
        click.Option(
            ["--log-level"],
            type=click.Choice(LEVELS, case_sensitive=False),
            metavar="LEVEL",
            expose_value=False,
            help=f"Show this client's log records of this level and above ({DEFAULT_LOG_LEVEL}); "
            "DEBUG also shows the traceback of an error. Give it before the driver.",
        ),
    )
    group.context_settings.setdefault("help_option_names", ["-h", "--help"])
    return group


def _leading_log_level(args: list[str]) -> str:
    """The ``--log-level`` given before the driver's name, needed before connecting (click checks it later)."""
    level = DEFAULT_LOG_LEVEL
    position = 0
    while position < len(args):
        argument = args[position]
        if argument == "--log-level" and position + 1 < len(args):
            value, position = args[position + 1], position + 2
        elif argument.startswith("--log-level="):
            value, position = argument.partition("=")[2], position + 1
        else:
            break
        if value.upper() in LEVELS:
            level = value.upper()
    return level


def _lost_exporter(error: BaseException) -> bool:
    from jumpstarter.client import ExporterConnectionLost

    return isinstance(error, ExporterConnectionLost)


def _fail(code: int, message: str, debug: bool) -> int:
    _echo_error(message, debug)
    return code


def _echo_error(message: str, debug: bool) -> None:
    if debug and sys.exc_info()[0] is not None:
        traceback.print_exc()
    output.error(PROG_NAME, message)


def _interrupted() -> int:
    # On a terminal, ^C was echoed: start a line of our own.
    with suppress(OSError, ValueError):
        if sys.stderr.isatty():
            click.echo("", err=True)
    output.say(PROG_NAME, "interrupted")
    return EXIT_INTERRUPTED


def _silence_stdout() -> None:
    # Python flushes stdout at exit: point it at /dev/null so that flush cannot fail again.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def _complete(instruction: str) -> int:
    """Shell completion: ``<shell>_source`` prints the script, ``<shell>_complete`` completes."""
    from click.shell_completion import shell_complete

    if instruction.endswith("_source"):
        # Usually run from an rc file, outside any jmp shell: needs no exporter.
        return shell_complete(click.Group(PROG_NAME), {}, PROG_NAME, COMPLETE_VAR, instruction)
    # Completions are what this prints on stdout; anything on stderr would garble the prompt.
    logging.disable(logging.CRITICAL)
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)  # also what C libraries (gRPC) would print
        os.close(devnull)
        from jumpstarter.client.connect import connect
        from jumpstarter.utils.env import endpoint_from_environment

        with connect(endpoint_from_environment(), attach=False) as client:
            return shell_complete(_root_group(client), {}, PROG_NAME, COMPLETE_VAR, instruction)
    except Exception:
        return 1


_NO_ARGS_IS_HELP: type[click.UsageError] | tuple[()] = getattr(click.exceptions, "NoArgsIsHelpError", ())
