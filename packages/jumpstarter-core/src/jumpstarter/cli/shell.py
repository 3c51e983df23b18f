"""`jmp shell`: a shell (or one command) with an exporter at hand.

    $ jmp shell --exporter-config bench.yaml            # local mode: the drivers run here
    $ jmp shell --exporter-config bench.yaml -- pytest  # one command instead of $SHELL
    $ jmp shell --host lab-7:1234 --tls-ca ca.pem --token-file token

Local mode serves the drivers of an exporter configuration in this process, on a private
Unix socket, for as long as the shell lives (one session: the drivers keep their state
between commands). With ``--host`` the shell uses an exporter that already runs. Either way
the shell or command gets ``JUMPSTARTER_HOST`` (with the credentials it needs, in its
environment only), which `j`, `jumpstarter.utils.env()` and the pytest plugin read; the
environment that runs `jmp` comes first on its PATH, also after an interactive shell's rc
files (see `jumpstarter.cli.interactive`), and the `j` commands it starts end with it (see
`jumpstarter.cli.lifetime`).

Options: one of ``--exporter-config`` (local mode), ``--host`` (with the credentials of the
latter) and the lab options (``--selector``/``-l``, ``--name``, ``--lease``, with
``--duration`` and the client configuration's ``--client``/``--client-config``: the exporter
is leased from a lab controller, see `jumpstarter.cli.lease_shell`). An unknown option is an
error naming the closest one; the original jumpstarter's spellings say what to write instead.

The exporter's log records are printed on stderr for the shell's whole life: in local mode
straight from the drivers' loggers (so that what `reset()` and `close()` log shows too),
with ``--host`` through the exporter's log stream.

Exit codes: the command's (or the shell's); 128+N when it died of signal N; 1 when the
drivers could not start (here, or at ``--host``), or a lab's exporter at ``--host`` is between
leases; 2 for a bad configuration or usage; 3 when the exporter cannot be reached; 4 when the
lease ended while the command ran (it was hung up); 5 when no lease was granted (refused,
unsatisfiable, or not within the acquisition timeout); 126/127 when the command cannot be run
or is not found.

Signals: SIGTERM and SIGHUP sent to ``jmp shell`` are passed on to the command (an
interactive shell gets SIGHUP, the signal that ends it); SIGINT too, unless it came from
the terminal, which sent it to the command already. A command still running 5 s later, or
when the signal comes again, is killed. Then the exporter stops: drivers closed, socket
removed.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import click

from jumpstarter.cli import output
from jumpstarter.cli.interactive import command_environment, interactive_shell
from jumpstarter.cli.lifetime import JMP_SHELL_PID
from jumpstarter.cli.logs import configure_terminal_logging, log_level_option
from jumpstarter.config.env import (
    JMP_DRIVERS_ALLOW,
    JMP_GRPC_INSECURE,
    JMP_GRPC_PASSPHRASE,
    JMP_TLS_CA,
    JMP_TLS_SERVER_NAME,
    JMP_TOKEN,
    JUMPSTARTER_HOST,
)

logger = logging.getLogger(__name__)

PROGRAM = "jmp"

EXIT_START_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
EXIT_CANNOT_RUN = 126
EXIT_NOT_FOUND = 127

# How long a command may take to end after the signal passed on to it, before it is killed.
COMMAND_KILL_DELAY_SECONDS = 5.0

DEFAULT_LOG_LEVEL = "INFO"

# The variables that carry an exporter's credentials: a local shell gives its command none.
_CREDENTIAL_VARIABLES = (
    JMP_TOKEN,
    JMP_GRPC_PASSPHRASE,
    JMP_TLS_CA,
    JMP_TLS_SERVER_NAME,
    JMP_GRPC_INSECURE,
    "JUMPSTARTER_GRPC_INSECURE",
)

F = TypeVar("F", bound=Callable[..., Any])


class _ShellError(Exception):
    """Ends `jmp shell` before the command runs: ``jmp: error: MESSAGE`` on stderr, exit `code`."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def _original_option(*declarations: str, takes_value: bool, advice: str) -> Callable[[F], F]:
    """An option of the original jumpstarter's `jmp shell`: refused with what to write instead.

    Declared (hidden) so that it is never taken for the command to run.
    """

    def refuse(ctx: click.Context, param: click.Parameter, value: object) -> None:
        if value:
            raise click.UsageError(f"{declarations[-1]} is the original jumpstarter's option: {advice}", ctx=ctx)

    return click.option(
        *declarations, is_flag=not takes_value, hidden=True, expose_value=False, callback=refuse, is_eager=True
    )


# Leasing an exporter from a lab controller (a third kind of _Exporter, see lease_shell).
_LAB_OPTIONS = ("selector", "name", "lease", "duration", "acquisition_timeout", "client", "client_config")
DEFAULT_LEASE_DURATION = "30m"


def _lab_options(function: F) -> F:
    from jumpstarter.cli.lab_options import Duration
    from jumpstarter.config.durations import DURATION_HELP

    for option in reversed(
        [
            click.option(
                "-l", "--selector", multiple=True, metavar="KEY=VALUE",
                help="Lease an exporter with these labels from the lab controller (repeat, or join with commas).",
            ),
            click.option("-n", "--name", metavar="EXPORTER", help="Lease this exporter by its name."),
            click.option("--lease", metavar="NAME", help="Use this existing lease (jmp create lease); it is kept."),
            click.option(
                "--duration", type=Duration(), metavar="DURATION",
                help=f"How long to lease the exporter for ({DEFAULT_LEASE_DURATION}): {DURATION_HELP}.",
            ),
            click.option(
                "--acquisition-timeout", type=Duration(), metavar="DURATION",
                help="How long to wait for an exporter (default: the client configuration's, 2 h).",
            ),
            click.option("--client", metavar="NAME", help="The client configuration of this name (jmp config client)."),
            click.option("--client-config", metavar="FILE", help="The client configuration in this file."),
        ]
    ):  # fmt: skip
        function = option(function)
    return function


@click.command("shell", context_settings={"allow_interspersed_args": False})
@click.option(
    "--exporter-config",
    metavar="FILE",
    help="Serve the drivers of this exporter configuration in this process (local mode, no server).",
)
@click.option(
    "--host",
    metavar="ADDRESS",
    help="Use the exporter listening at ADDRESS: HOST:PORT (TLS unless --insecure) or a Unix socket path.",
)
@click.option(
    "--tls-ca",
    metavar="FILE",
    help=f"With --host: the PEM certificate(s) to trust for TLS (default: ${JMP_TLS_CA}, else the system's).",
)
@click.option(
    "--tls-server-name",
    metavar="NAME",
    help="With --host HOST:PORT: check the exporter's certificate against NAME instead of HOST "
    f"(also ${JMP_TLS_SERVER_NAME}).",
)
@click.option(
    "--token-file",
    metavar="FILE",
    help=f"With --host: a file holding the exporter's token (default: ${JMP_TOKEN}).",
)
@click.option(
    "--insecure",
    is_flag=True,
    help=f"With --host HOST:PORT: no TLS, for exporters run with --insecure-no-auth (also ${JMP_GRPC_INSECURE}=1).",
)
@log_level_option(f"Print the exporter's log records of this level and above ({DEFAULT_LOG_LEVEL}).")
@_lab_options
@_original_option(
    "--tls-grpc", takes_value=True, advice="use --host HOST:PORT (with --tls-ca FILE and --token-file FILE)"
)
@_original_option("--tls-grpc-insecure", takes_value=False, advice="use --insecure")
@_original_option(
    "--passphrase",
    takes_value=True,
    advice=f"put the token in a file and give --token-file FILE, or set ${JMP_TOKEN} "
    "(a secret on the command line is visible to every user of this machine)",
)
@_original_option("--exporter", takes_value=True, advice="give the configuration's file: --exporter-config FILE")
@_original_option(
    "--exporter-logs", takes_value=False, advice="the exporter's logs are always shown (--log-level chooses how many)"
)
@_original_option("--retry-timeout", takes_value=True, advice="a lost exporter ends the shell; start it again")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="[--] [COMMAND [ARGS]...]")
@click.pass_context
def shell(
    ctx: click.Context,
    /,
    exporter_config: str | None,
    host: str | None,
    tls_ca: str | None,
    tls_server_name: str | None,
    token_file: str | None,
    insecure: bool,
    log_level: str | None,
    command: tuple[str, ...],
    **lab: object,
) -> None:
    """Run $SHELL, or COMMAND, with an exporter's drivers at hand.

    Inside, `j` drives them from the command line (j --help), and Python code reaches them
    with jumpstarter.utils.env() or pytest's jumpstarter_client fixture; `j`, `python` and
    `pytest` are those of the environment that runs this jmp. The exit code is the
    command's (128+N when signal N killed it).

    \b
    Examples:
      jmp shell --exporter-config bench.yaml
      jmp shell --exporter-config bench.yaml -- j power on
      jmp shell --exporter-config bench.yaml -- pytest tests/
      jmp shell --host lab-7:1234 --tls-ca ca.pem --token-file token
      jmp shell --selector board=rpi4 --duration 1h
      jmp shell -l board=rpi4 -- pytest tests/
    """
    lab_given = [name for name in _LAB_OPTIONS if lab.get(name)]
    if lab_given:
        option = "--" + lab_given[0].replace("_", "-")
        if exporter_config is not None or host is not None:
            raise click.UsageError(
                f"{option} is for leasing an exporter from a lab controller; it does not go with "
                f"{'--exporter-config' if exporter_config is not None else '--host'}",
                ctx=ctx,
            )
        if not (lab.get("selector") or lab.get("name") or lab.get("lease")):
            if lab.get("client") or lab.get("client_config"):
                _check_lab_client(lab.get("client"), lab.get("client_config"))
            raise click.UsageError(
                f"{option}: say which exporter to lease: --selector KEY=VALUE, --name EXPORTER or --lease NAME", ctx=ctx
            )
        if lab.get("lease") and (lab.get("selector") or lab.get("name")):
            raise click.UsageError("--lease uses an existing lease: it does not go with --selector or --name", ctx=ctx)
    elif (exporter_config is None) == (host is None):
        raise click.UsageError(
            "give --exporter-config FILE (local mode), --host ADDRESS, or --selector KEY=VALUE (lease from a lab)",
            ctx=ctx,
        )
    if exporter_config is not None and (tls_ca or tls_server_name or token_file or insecure):
        raise click.UsageError(
            "--tls-ca, --tls-server-name, --token-file and --insecure go with --host, not --exporter-config", ctx=ctx
        )
    configure_terminal_logging(log_level or DEFAULT_LOG_LEVEL)
    interactive = not command
    argv = list(command) or [os.environ.get("SHELL") or "/bin/sh"]
    if lab_given:
        target: _Exporter = _leased(lab)
    elif exporter_config is not None:
        target = _LocalExporter(exporter_config)
    else:
        assert host is not None
        target = _RemoteExporter(host, tls_ca, tls_server_name, token_file, insecure)
    ctx.exit(_run(target, argv, interactive))


def _leased(lab: dict[str, Any]) -> _Exporter:
    from jumpstarter.cli.lease_shell import leased_exporter
    from jumpstarter.config.durations import parse_duration

    selector = ",".join(part.strip() for part in lab.get("selector") or () if part.strip())
    try:
        return leased_exporter(
            lab.get("client"), lab.get("client_config"), selector,
            lab.get("duration") or parse_duration(DEFAULT_LEASE_DURATION), lab.get("lease"), lab.get("name") or "",
            lab.get("acquisition_timeout"),
        )  # fmt: skip
    except _ShellError as error:
        raise _ConfigProblem(str(error)) from None


class _ConfigProblem(click.ClickException):
    """The client configuration cannot reach a lab: a usage error, without the help line."""

    exit_code = EXIT_USAGE


def _check_lab_client(name: object, path: object) -> None:
    """Resolve the client configuration as every lab command will, so that its mistakes show now."""
    from jumpstarter.config.client import lab_problem, resolve_client
    from jumpstarter.config.yaml import ConfigError

    try:
        resolved = resolve_client(name if isinstance(name, str) else None, path if isinstance(path, str) else None)
    except ConfigError as error:
        raise _ConfigProblem(str(error)) from None
    problem = lab_problem(resolved)
    if problem is not None:
        raise _ConfigProblem(f"{problem} (jmp config client create NAME writes one that can)")


# -- the exporter ------------------------------------------------------------------------


class _Exporter:
    """Where the command's exporter is: started (or connected) in `start`, stopped by the stack."""

    stopping = "stopping the exporter"

    def start(self, stack: ExitStack) -> None:
        raise NotImplementedError

    def environment(self, base: dict[str, str]) -> dict[str, str]:
        raise NotImplementedError

    def banner(self) -> str:
        raise NotImplementedError

    def label(self) -> str:
        """What the prompt shows: ``(jmp LABEL)``."""
        raise NotImplementedError

    def interrupt(self, signum: int) -> None:
        """A signal came while starting: stop starting if it can (the default waits for the start)."""

    def final_code(self, code: int) -> int:
        """`jmp shell`'s exit code, from the command's."""
        return code


@dataclass
class _LocalExporter(_Exporter):
    config_path: str
    name: str = ""
    socket: str = ""
    client_classes: list[str] = field(default_factory=list)

    def start(self, stack: ExitStack) -> None:
        from jumpstarter.common.loops import blocking_loop
        from jumpstarter.config.exporter import load_exporter_config, local_mode_note
        from jumpstarter.config.yaml import ConfigError
        from jumpstarter.driver.tree import walk_tree
        from jumpstarter.testing import serve_socket_async

        try:
            config = load_exporter_config(self.config_path)
            self.name = config.metadata.name
            root = config.build()
        except ConfigError as error:
            raise _ShellError(EXIT_USAGE, str(error)) from None
        note = local_mode_note(config)
        if note is not None:
            output.say(PROGRAM, f"note: {note}")
        self.client_classes = sorted({place.node.client() for place in walk_tree(root)})
        portal = stack.enter_context(blocking_loop())
        try:
            self.socket = stack.enter_context(portal.wrap_async_context_manager(serve_socket_async(root)))
        except Exception as error:  # a driver's reset() failed: the session closed the drivers
            raise _ShellError(
                EXIT_START_FAILED, f"the exporter {self.name} did not start: {type(error).__name__}: {error}"
            ) from None

    def environment(self, base: dict[str, str]) -> dict[str, str]:
        from jumpstarter.client.classes import ClientClassPolicy

        env = {key: value for key, value in base.items() if key not in _CREDENTIAL_VARIABLES}
        env[JUMPSTARTER_HOST] = self.socket
        # The drivers are the user's own code: their client classes are trusted, exactly those.
        allowed = [item for item in base.get(JMP_DRIVERS_ALLOW, "").split(",") if item.strip()]
        allowed += ClientClassPolicy.exactly(self.client_classes).allow
        env[JMP_DRIVERS_ALLOW] = ",".join(allowed)
        return env

    def banner(self) -> str:
        return f"exporter {self.name} runs here (local mode); 'j --help' lists its drivers; exit to stop it"

    def label(self) -> str:
        return self.name


@dataclass
class _RemoteExporter(_Exporter):
    host: str
    tls_ca_path: str | None
    tls_server_name: str | None
    token_file: str | None
    insecure: bool
    address: str = ""
    token: str | None = field(default=None, repr=False)

    def start(self, stack: ExitStack) -> None:
        from jumpstarter.client import DriverConnectionError, DriverError, ExporterNotReady
        from jumpstarter.client.connect import connect
        from jumpstarter.client.endpoint import ExporterEndpoint, is_tcp_address
        from jumpstarter.common.tls import check_pem_certificates
        from jumpstarter.config.yaml import ConfigError

        self.address = self.host if is_tcp_address(self.host) else os.path.abspath(self.host)
        if self.insecure and (self.tls_ca_path or self.tls_server_name):
            raise _ShellError(EXIT_USAGE, "--insecure means no TLS: it does not go with --tls-ca or --tls-server-name")
        self.insecure = self.insecure or os.environ.get(JMP_GRPC_INSECURE) == "1"
        ca_option = "--tls-ca" if self.tls_ca_path else JMP_TLS_CA
        if not self.insecure:  # the TLS settings of the environment apply to TLS only
            self.tls_ca_path = self.tls_ca_path or os.environ.get(JMP_TLS_CA) or None
            self.tls_server_name = self.tls_server_name or os.environ.get(JMP_TLS_SERVER_NAME) or None
        tls_ca = _read(self.tls_ca_path, ca_option) if self.tls_ca_path else None
        if self.token_file is not None:
            self.token = _read(self.token_file, "--token-file").decode(errors="replace").strip()
            if not self.token:
                raise _ShellError(EXIT_USAGE, f"the token file {self.token_file} is empty")
        else:
            self.token = os.environ.get(JMP_TOKEN) or os.environ.get(JMP_GRPC_PASSPHRASE) or None
        try:
            if tls_ca is not None:  # checked here to name the file; gRPC would only log lines of its own
                check_pem_certificates(tls_ca, f"{ca_option} {self.tls_ca_path}")
            endpoint = ExporterEndpoint(
                self.address,
                tls_ca=tls_ca,
                token=self.token,
                insecure=self.insecure,
                tls_server_name=self.tls_server_name,
            )
        except ValueError as error:
            raise _ShellError(EXIT_USAGE, str(error)) from None
        try:
            # Attached: the exporter keeps its session (the drivers' state) while the shell
            # lives, and sends its log records, which are printed here.
            stack.enter_context(connect(endpoint, attach=True))
        except DriverConnectionError as error:
            raise _ShellError(EXIT_UNREACHABLE, str(error)) from None
        except ExporterNotReady as error:
            # Reached, and it says why it takes no calls: its drivers did not start, or it is between leases.
            raise _ShellError(EXIT_START_FAILED, str(error)) from None
        except ConfigError as error:  # the client configuration (its allow-list) is wrong
            raise _ShellError(EXIT_USAGE, str(error)) from None
        except DriverError as error:
            logger.warning("the exporter's logs cannot be shown: %s", error)
            try:
                stack.enter_context(connect(endpoint, attach=False))
            except DriverConnectionError as error:
                raise _ShellError(EXIT_UNREACHABLE, str(error)) from None

    def environment(self, base: dict[str, str]) -> dict[str, str]:
        env = dict(base)
        env[JUMPSTARTER_HOST] = self.address
        if self.token_file is not None and self.token:
            env[JMP_TOKEN] = self.token
            env.pop(JMP_GRPC_PASSPHRASE, None)
        if self.tls_ca_path:
            env[JMP_TLS_CA] = os.path.abspath(self.tls_ca_path)
        if self.tls_server_name:
            env[JMP_TLS_SERVER_NAME] = self.tls_server_name
        if self.insecure:
            env[JMP_GRPC_INSECURE] = "1"
        else:
            env.pop(JMP_GRPC_INSECURE, None)
            env.pop("JUMPSTARTER_GRPC_INSECURE", None)
        return env

    stopping = "disconnecting from the exporter"

    def banner(self) -> str:
        return f"exporter at {self.address}; 'j --help' lists its drivers; exit to leave"

    def label(self) -> str:
        return self.host


def _read(path: str, option: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as error:
        raise _ShellError(EXIT_USAGE, f"{option} {path}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise _ShellError(EXIT_USAGE, f"{option} {path}: not a text file") from None


# -- the command and the signals ---------------------------------------------------------


def _run(exporter: _Exporter, argv: list[str], interactive: bool) -> int:
    supervisor = _Supervisor(interactive)
    supervisor.on_stop = exporter.interrupt
    with supervisor.handling_signals():
        code: int | None = None
        try:
            with ExitStack() as stack:
                try:
                    exporter.start(stack)
                except _ShellError as error:
                    output.error(PROGRAM, str(error))
                    return error.code
                except Exception as error:
                    output.error(PROGRAM, f"{type(error).__name__}: {error}")
                    return EXIT_START_FAILED
                env = command_environment(exporter.environment(dict(os.environ)))
                env[JMP_SHELL_PID] = str(os.getpid())  # what `j` watches, to end with the shell
                if interactive:
                    # Our rc file reads the user's, then puts this environment first again.
                    directory = Path(tempfile.mkdtemp(prefix="jmp-shell-"))
                    stack.callback(shutil.rmtree, directory, ignore_errors=True)
                    start = interactive_shell(argv[0], env, exporter.label(), directory)
                    argv, env = start.argv, start.env
                    if supervisor.stop_signal is None and _stdin_is_terminal():
                        output.say(PROGRAM, exporter.banner())
                code = exporter.final_code(supervisor.run(argv, env))
                # Leaving the stack stops the exporter (or disconnects from it).
        except Exception as error:
            output.error(PROGRAM, f"{exporter.stopping} failed: {type(error).__name__}: {error}")
            if code is None:
                return EXIT_START_FAILED
        assert code is not None
        return code


def _stdin_is_terminal() -> bool:
    """Whether someone types at this shell (no banner for input from a pipe or a file)."""
    try:
        return os.isatty(0)
    except OSError:
        return False


class _Supervisor:
    """Runs the command and decides what a signal sent to `jmp shell` does.

    While the command runs, a signal is passed on to it (see the module's documentation)
    and a timer (SIGALRM) kills it if it is still running COMMAND_KILL_DELAY_SECONDS later; the
    same signal again kills it at once. Before the command and after it, the first signal
    asks to stop as soon as the exporter has started (or stopped), a second one exits at once.
    """

    def __init__(self, interactive: bool) -> None:
        self.interactive = interactive
        self.stop_signal: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._passed_on = False
        self._terminal: int | None = None
        # Told of the first signal that comes before the command runs (to stop waiting for a lease).
        self.on_stop: Callable[[int], None] | None = None

    @contextmanager
    def handling_signals(self) -> Iterator[None]:
        try:
            self._terminal = os.open("/dev/tty", os.O_RDONLY)
        except OSError:
            self._terminal = None  # no controlling terminal: every signal was sent to us alone
        handlers = {signum: self._handle for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        handlers[signal.SIGALRM] = self._grace_over
        previous = {signum: signal.signal(signum, handler) for signum, handler in handlers.items()}
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            if self._terminal is not None:
                os.close(self._terminal)

    def run(self, argv: list[str], env: dict[str, str]) -> int:
        """Run the command to its end; return its exit code (128+N for signal N)."""
        if self.stop_signal is not None:
            return 128 + self.stop_signal
        try:
            process = subprocess.Popen(argv, env=env)
        except FileNotFoundError:
            output.error(PROGRAM, f"{argv[0]}: command not found")
            return EXIT_NOT_FOUND
        except OSError as error:
            output.error(PROGRAM, f"{argv[0]}: {error.strerror or error}")
            return EXIT_CANNOT_RUN
        self._process = process
        try:
            if self.stop_signal is not None:  # arrived while the command was starting
                self._pass_on(self.stop_signal)
            returncode = process.wait()
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            self._process = None
        return 128 - returncode if returncode < 0 else returncode

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._process is None:
            # Starting or stopping the exporter: stop as soon as possible, or now if asked twice.
            if self.stop_signal is not None:
                output.say(PROGRAM, "exiting at once, the exporter was not stopped")
                os._exit(128 + signum)
            self.stop_signal = signum
            output.say(PROGRAM, "stopping (send the signal again to exit at once, leaving the exporter as it is)")
            if self.on_stop is not None:
                self.on_stop(signum)
        elif self._passed_on:
            self._kill()  # asked again: no more waiting
        elif not (signum == signal.SIGINT and self._from_terminal()):
            self._pass_on(signum)

    def _from_terminal(self) -> bool:
        """Whether a SIGINT was (most likely) typed on our terminal, which sent it to the command too."""
        if self._terminal is None:
            return False
        try:
            return os.tcgetpgrp(self._terminal) == os.getpgrp()
        except OSError:
            return False

    def _pass_on(self, signum: int) -> None:
        process = self._process
        if process is None:
            return
        self._passed_on = True
        signal.setitimer(signal.ITIMER_REAL, COMMAND_KILL_DELAY_SECONDS)
        with suppress(ProcessLookupError):
            if self.interactive:
                # An interactive shell ignores SIGINT and SIGTERM; SIGHUP ends it and its jobs.
                process.send_signal(signal.SIGHUP)
                process.send_signal(signal.SIGCONT)
            else:
                process.send_signal(signum)

    def _grace_over(self, signum: int, frame: FrameType | None) -> None:
        self._kill()

    def _kill(self) -> None:
        process = self._process
        if process is not None:
            with suppress(ProcessLookupError):
                process.kill()
