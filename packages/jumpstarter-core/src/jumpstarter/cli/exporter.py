"""`jmp exporter run`: serve an exporter configuration's drivers until stopped.

With ``endpoint`` in its configuration the exporter joins that lab controller (see
`jumpstarter.exporter.ControllerLink`): SIGHUP then finishes the lease in progress and stops.

Exit codes: 0 stopped by SIGTERM or SIGINT (Ctrl-C), or after SIGHUP; 1 the exporter could
not run (a port taken, a socket path in use); 2 a wrong command line or configuration (TLS
and token files included, and a token the lab controller refuses); 3 a lease hook whose
``onFailure`` is ``exit`` failed.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import anyio
import click

from jumpstarter.cli import output
from jumpstarter.cli.logs import configure_terminal_logging

if TYPE_CHECKING:
    from jumpstarter.config.exporter import ExporterConfig
    from jumpstarter.driver import Driver
    from jumpstarter.exporter import TcpListener

logger = logging.getLogger("jumpstarter.exporter")

LOG_LEVELS = click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False)


@dataclass(frozen=True)
class ServeOptions:
    config: Path
    unix: str | None
    tcp: str | None
    tls_cert: Path | None
    tls_key: Path | None
    token_file: Path | None
    insecure_no_auth: bool
    state_dir: Path | None


def serve_options(function: click.decorators.FC) -> click.decorators.FC:
    """The options of `jmp exporter run` (and of its alias `jmp run`), apart from the config."""
    for option in reversed(
        [
            click.option("--unix", metavar="PATH", help="Listen on this Unix socket (default: a private one)."),
            click.option("--tcp", metavar="HOST:PORT", help="Also, or only, listen on TCP (TLS and a token)."),
            click.option("--tls-cert", type=click.Path(path_type=Path), help="TLS certificate (PEM) for --tcp."),
            click.option("--tls-key", type=click.Path(path_type=Path), help="TLS private key (PEM) for --tcp."),
            click.option(
                "--token-file", type=click.Path(path_type=Path), help="File holding the token clients must send."
            ),
            click.option(
                "--insecure-no-auth", is_flag=True, help="Listen on --tcp without TLS and without a token (unsafe)."
            ),
            click.option(
                "--state-dir",
                type=click.Path(path_type=Path),
                help="Where a generated certificate and token are kept (default: "
                "$XDG_STATE_HOME/jumpstarter/exporters/NAME, NAME from the configuration's metadata.name; "
                "XDG_STATE_HOME defaults to ~/.local/state).",
            ),
            click.option("--log-level", type=LOG_LEVELS, default="INFO", show_default=True, help="Exporter logs."),
        ]
    ):
        function = option(function)
    return function


@click.group()
def exporter() -> None:
    """Exporters: serve drivers next to the hardware."""


@exporter.command("run")
@click.option("--config", "config_path", required=True, type=click.Path(path_type=Path), help="Exporter config.")
@serve_options
def run_command(config_path: Path, log_level: str, **options: object) -> None:
    """Serve the drivers of an exporter configuration until stopped (SIGTERM or Ctrl-C).

    A TCP listener needs TLS and a token: pass --tls-cert/--tls-key and --token-file, or let
    the exporter generate a self-signed certificate and a token and keep them in its state
    directory (it prints where, and the certificate's fingerprint).
    """
    run_exporter(ServeOptions(config=config_path, **options), log_level)  # type: ignore[arg-type]


@click.command("run", hidden=False)
@click.option("--exporter-config", "config_path", required=True, type=click.Path(path_type=Path))
@serve_options
def run_alias(config_path: Path, log_level: str, **options: object) -> None:
    """Alias of `jmp exporter run --config FILE` (the original's spelling)."""
    run_exporter(ServeOptions(config=config_path, **options), log_level)  # type: ignore[arg-type]


def run_exporter(options: ServeOptions, log_level: str) -> None:
    # The exporter's log outlives the terminal it was started in: every line has its time.
    configure_terminal_logging(log_level, timestamps=True)
    from jumpstarter.config.exporter import check_for_serving, load_exporter_config
    from jumpstarter.config.yaml import ConfigError

    try:
        config = load_exporter_config(options.config)
        check_for_serving(config)
        config.check()
    except ConfigError as error:
        _exit(2, str(error))
    try:
        tcp, security = _tcp_listener(options, config.metadata.name)
    except ValueError as error:
        _exit(2, str(error))
    except CannotListen as error:
        _exit(1, str(error))
    except OSError as error:  # a TLS or token file that cannot be read
        _exit(2, f"{error.filename}: {error.strerror}" if error.filename else str(error))
    try:
        root = config.build()  # once at start: drivers that cannot be created are refused now
    except ConfigError as error:
        _exit(2, str(error))
    from jumpstarter.config.exporter import joins_a_lab

    try:
        if joins_a_lab(config):
            code = anyio.run(_serve_lab, config, root, options, tcp, security)
            if code:
                sys.exit(code)
        else:
            anyio.run(_serve, config, root, options, tcp, security)
    except OSError as error:
        _exit(1, str(error))


async def _serve_lab(
    config: ExporterConfig, root: Driver, options: ServeOptions, tcp: TcpListener | None, security: str
) -> int:
    from jumpstarter.exporter import ControllerAddress, ControllerLink, Listening, serve_lab_until_signalled

    name = config.metadata.name
    try:
        address = ControllerAddress.from_config(config)
    except ValueError as error:
        _exit(2, str(error))
    link = ControllerLink(address, config.build, root=root, labels={"jumpstarter.dev/name": name}, hooks=config.hooks)

    def serving(where: Listening) -> None:
        _say(f"exporter {name!r} joining the lab controller at {address.endpoint}")
        if where.unix_path and options.unix:
            _say(f"exporter {name!r} serving on {where.unix_path}")
        if where.tcp_address:
            _say(f"exporter {name!r} serving on {where.tcp_address}{security}")

    return await serve_lab_until_signalled(
        link,
        unix_path=options.unix,
        tcp=tcp,
        on_ready=serving,
        say=lambda message: _say(f"exporter {name!r}: {message}"),  # its messages are sentences of their own
    )


async def _serve(
    config: ExporterConfig, root: Driver, options: ServeOptions, tcp: TcpListener | None, security: str
) -> None:
    from jumpstarter.exporter import Exporter, Listening, serve_until_signalled

    name = config.metadata.name
    exporter = Exporter(config.build, built=root, labels={"jumpstarter.dev/name": name})

    def serving(where: Listening) -> None:
        if where.unix_path:
            _say(f"exporter {name!r} serving on {where.unix_path}")
        if where.tcp_address:
            _say(f"exporter {name!r} serving on {where.tcp_address}{security}")

    await serve_until_signalled(
        exporter,
        unix_path=options.unix,
        tcp=tcp,
        private_unix=options.tcp is None,
        on_ready=serving,
        say=lambda message: _say(f"exporter {name!r} {message}"),
    )


def _tcp_listener(options: ServeOptions, name: str) -> tuple[TcpListener | None, str]:
    """The TCP listener the options ask for, with its TLS identity and token (made if needed),
    and how it is protected, to tell the user."""
    from jumpstarter.common.permissions import check_private_directory, check_secret_file
    from jumpstarter.common.tls import TlsIdentity, default_names, generated_identity, write_secret
    from jumpstarter.exporter import TcpListener
    from jumpstarter.exporter.auth import new_token

    if options.tcp is None:
        for flag, given in (
            ("--tls-cert", options.tls_cert),
            ("--tls-key", options.tls_key),
            ("--token-file", options.token_file),
            ("--insecure-no-auth", options.insecure_no_auth),
        ):
            if given:
                raise ValueError(f"{flag} is for a TCP listener: add --tcp HOST:PORT")
        return None, ""
    host, separator, port_text = options.tcp.rpartition(":")
    if not separator or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(
            f"--tcp takes HOST:PORT (such as 0.0.0.0:7777, or 127.0.0.1:0 for any port), not {options.tcp!r}"
        )
    host = host.strip("[]") or "0.0.0.0"
    port = int(port_text)
    if options.insecure_no_auth and (options.tls_cert or options.tls_key or options.token_file):
        raise ValueError("--insecure-no-auth cannot go with --tls-cert, --tls-key or --token-file")
    if (options.tls_cert is None) != (options.tls_key is None):
        raise ValueError("--tls-cert and --tls-key go together")
    check_free(host, port)
    if options.insecure_no_auth:
        _say(
            f"WARNING: {options.tcp} has no TLS and no token: anyone who can reach it can drive the hardware "
            "and read what passes"
        )
        return TcpListener(host=host, port=port), " WITHOUT TLS OR TOKEN"
    state = options.state_dir or _default_state_dir(name)
    check_private_directory(state, "the state directory")
    check_secret_file(options.tls_key or state / "tls.key", "the TLS private key")
    check_secret_file(options.token_file or state / "token", "the token file")
    if options.tls_cert is not None and options.tls_key is not None:
        tls = TlsIdentity.load(options.tls_cert, options.tls_key)
        certificate_path = options.tls_cert
    else:
        generated = generated_identity(state, default_names(host), common_name=f"jumpstarter exporter {name}")
        tls, certificate_path = generated.identity, generated.certificate_path
        if generated.replaced:
            _say(
                f"made a new TLS certificate: the one in {certificate_path} was not valid for every name and "
                "address of this listener; give clients the new one"
            )
    if options.token_file is not None:
        token = options.token_file.read_text().strip()
        if not token:
            raise ValueError(f"the token file {options.token_file} is empty")
        token_path = options.token_file
    else:
        token_path = state / "token"
        if token_path.exists():
            token = token_path.read_text().strip()
        else:
            token = new_token()
            write_secret(token_path, token.encode() + b"\n")
    security = f" with TLS (certificate {certificate_path}, SHA-256 {tls.fingerprint}) and a token (in {token_path})"
    return TcpListener(host=host, port=port, tls=tls, token=token), security


class CannotListen(Exception):
    """The TCP address cannot be listened on (exit 1)."""


def check_free(host: str, port: int, flag: str = "--tcp") -> None:
    """Bind the address as gRPC would, to report a port in use (or an address not ours) in one line of our own.

    gRPC would only log its own lines and say "set GRPC_VERBOSITY"; it also lets two servers
    share a port (SO_REUSEPORT), which this probe, binding without it, does not. `flag` is the
    option that gave the address (``jmp router run --listen`` uses it too).
    """
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise ValueError(
            f"{flag} {shown}: {host!r} is not an address or a known host name ({error.strerror})"
        ) from None
    for family, kind, protocol, _, address in addresses:
        with socket.socket(family, kind, protocol) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(address)
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    raise CannotListen(
                        f"{shown} is in use{_holder(port)}: stop what listens there, or choose another port "
                        f"({flag} {host}:0 picks a free one)"
                    ) from None
                if error.errno == errno.EACCES:
                    raise CannotListen(
                        f"cannot listen on {shown}: permission denied (ports below 1024 need privileges): "
                        "choose a port above 1023"
                    ) from None
                if error.errno == errno.EADDRNOTAVAIL:
                    raise ValueError(
                        f"{flag} {shown}: {host} is not an address of this host: give one of its addresses, "
                        "or 0.0.0.0 for all"
                    ) from None
                raise CannotListen(f"cannot listen on {shown}: {error.strerror or error}") from None


def _holder(port: int) -> str:
    """`` (by pid N, NAME)`` for the process listening on `port`, when this user may see it."""
    try:
        import psutil

        for connection in psutil.net_connections(kind="tcp"):
            address = connection.laddr  # empty when the socket has no address
            if connection.status == psutil.CONN_LISTEN and address and address.port == port and connection.pid:
                return f" (by pid {connection.pid}, {psutil.Process(connection.pid).name()})"
    except Exception:  # other users' processes are hidden, and this is only a hint
        return ""
    return ""


def _default_state_dir(name: str) -> Path:
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "jumpstarter" / "exporters" / name


def _say(message: str) -> None:
    output.say("jmp", message)


def _exit(code: int, message: str) -> NoReturn:
    output.error("jmp", message)
    sys.exit(code)
