"""`jmp router run`: a router process of the lab controller, apart from the controller.

With the controller's state directory (``--controller-state DIR``, on the controller's host) the
router issues its own certificate from the controller's CA, for the names and addresses of its
listen address, and checks stream tokens with the controller's public signing key. Elsewhere it
takes the three files instead: ``--tls-cert``, ``--tls-key`` (of a certificate the clients'
``tls.ca`` trusts) and ``--verify-key`` (the controller's ``signing-key.pub.pem``).

It listens behind the exporter's TCP defences (`jumpstarter.exporter.serve_gated`): TLS, a
bounded number of connections per peer, bounded handshakes, a raised limit of open files.
SIGTERM or SIGINT stops it: streams in progress get a second to end, then are cancelled.
"""

from __future__ import annotations

import re
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import anyio
import click

from jumpstarter.cli import output
from jumpstarter.cli.exporter import LOG_LEVELS
from jumpstarter.cli.logs import configure_terminal_logging

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

    from jumpstarter.common.tls import TlsIdentity

# The largest frame a router takes: the original's peers never send more than gRPC's default 4 MiB.
MAX_FRAME_BYTES = 4 * 1024 * 1024 + 1024


@click.group("router")
def router() -> None:
    """Relay streams between clients and exporters for a lab controller."""


@router.command("run")
@click.option("--listen", "listen", required=True, metavar="HOST:PORT", help="Where to listen (TLS); port 0: any.")
@click.option(
    "--controller-state",
    "state_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="The controller's --state-dir (on its host): the router's certificate and the verify key come from it.",
)
@click.option("--tls-cert", type=click.Path(path_type=Path, dir_okay=False), help="The router's certificate (PEM).")
@click.option("--tls-key", type=click.Path(path_type=Path, dir_okay=False), help="Its private key (PEM, 0600).")
@click.option(
    "--verify-key",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The controller's public signing key (signing-key.pub.pem in its state directory).",
)
@click.option(
    "--wait-timeout",
    type=click.FloatRange(min=0.1),
    default=60.0,
    show_default=True,
    metavar="SECONDS",
    help="How long one end of a stream waits for the other.",
)
@click.option("--log-level", type=LOG_LEVELS, default="INFO", show_default=True, help="Router logs.")
def run(
    listen: str,
    state_dir: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    verify_key: Path | None,
    wait_timeout: float,
    log_level: str,
) -> None:
    """Serve jumpstarter.v1.RouterService: pair a client's and an exporter's streams and relay them."""
    configure_terminal_logging(log_level, timestamps=True)
    from jumpstarter.cli.exporter import CannotListen

    try:
        settings = _settings(listen, state_dir, tls_cert, tls_key, verify_key)
    except ValueError as error:
        _exit(2, str(error))
    except CannotListen as error:
        _exit(1, str(error))
    except OSError as error:  # a file that cannot be read
        _exit(2, f"{error.filename}: {error.strerror}" if error.filename else str(error))
    try:
        anyio.run(_serve, settings, wait_timeout)
    except OSError as error:
        _exit(1, str(error))


@dataclass(frozen=True)
class _Settings:
    host: str
    port: int
    identity: TlsIdentity
    certificate: Path
    verify_key: EllipticCurvePublicKey
    trust: str  # what clients trust, to tell the user


def _settings(
    listen: str, state_dir: Path | None, tls_cert: Path | None, tls_key: Path | None, verify_key: Path | None
) -> _Settings:
    from jumpstarter.cli.exporter import check_free
    from jumpstarter.common.permissions import check_secret_file
    from jumpstarter.common.tls import TlsIdentity, default_names
    from jumpstarter_controller.state import StateDir, load_verify_key

    host, separator, port_text = listen.rpartition(":")
    if not separator or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(
            f"--listen takes HOST:PORT (such as 0.0.0.0:8083, or 127.0.0.1:0 for any port), not {listen!r}"
        )
    host, port = host.strip("[]") or "0.0.0.0", int(port_text)
    files = {"--tls-cert": tls_cert, "--tls-key": tls_key, "--verify-key": verify_key}
    if state_dir is not None:
        given = [flag for flag, path in files.items() if path is not None]
        if given:
            raise ValueError(f"--controller-state and {', '.join(given)} are alternatives: give one or the other")
    elif any(path is None for path in files.values()):
        missing = [flag for flag, path in files.items() if path is None]
        raise ValueError(
            "the router needs the controller's state directory (--controller-state DIR) or, elsewhere, "
            f"--tls-cert, --tls-key and --verify-key (missing: {', '.join(missing)})"
        )
    check_free(host, port, "--listen")
    if state_dir is not None:
        state = StateDir.existing(state_dir)
        directory = state.path / "routers" / re.sub(r"[^A-Za-z0-9.-]", "_", host)
        certificate, key_path = state.issue_server_certificate(default_names(host), directory)
        identity = TlsIdentity.load(certificate, key_path)
        public_key = load_verify_key(state.verify_key_path) if state.verify_key_path.exists() else state.verify_key()
        return _Settings(host, port, identity, certificate, public_key, f"clients trust {state.ca_path}")
    assert tls_cert is not None and tls_key is not None and verify_key is not None
    check_secret_file(tls_key, "the TLS private key")
    identity = TlsIdentity.load(tls_cert, tls_key)
    return _Settings(host, port, identity, tls_cert, load_verify_key(verify_key), "")


async def _serve(settings: _Settings, wait_timeout: float) -> None:
    import grpc

    from jumpstarter.common.protocol import SERVER_OPTIONS
    from jumpstarter.exporter import TcpListener, serve_gated
    from jumpstarter.exporter.guard import raise_descriptor_limit
    from jumpstarter_controller.router import Router, add_router_service

    raise_descriptor_limit()
    router_ = Router(settings.verify_key, wait_timeout=wait_timeout)
    limits = {"grpc.max_receive_message_length": MAX_FRAME_BYTES, "grpc.max_send_message_length": MAX_FRAME_BYTES}

    def make_server(
        interceptors: list[grpc.aio.ServerInterceptor] | None, options: list[tuple[str, object]]
    ) -> grpc.aio.Server:
        server_options = [(key, value) for key, value in SERVER_OPTIONS if key not in limits]
        server = grpc.aio.server(
            options=[*server_options, *limits.items(), *options],
            interceptors=interceptors,
            compression=None,
        )
        add_router_service(server, router_)
        return server

    listener = TcpListener(host=settings.host, port=settings.port, tls=settings.identity)
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with serve_gated(listener, make_server) as gate:
            router_.describe_peer = gate.describe_peer
            trust = f"; {settings.trust}" if settings.trust else ""
            _say(
                f"router serving on {gate.address} with TLS (certificate {settings.certificate}, "
                f"SHA-256 {settings.identity.fingerprint}){trust}"
            )
            async for number in signals:
                _say(f"router stopping ({signal.Signals(number).name})")
                break
    router_.close()
    _say(f"router stopped after {router_.total_pairs} streams")


def _say(message: str) -> None:
    output.say("jmp", message)
    sys.stderr.flush()


def _exit(code: int, message: str) -> NoReturn:
    output.error("jmp", message)
    sys.exit(code)
