"""`serve`: the controller's one TLS port, with ControllerService, ClientService, the built-in
RouterService and the admin service behind a connection gate and the token guard.

    await serve(ServeOptions(state_dir=Path("/var/lib/jumpstarter")), on_ready=print)
"""

from __future__ import annotations

import datetime
import logging
import signal
import socket
import time
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import grpc

from jumpstarter.common.protocol import SERVER_OPTIONS
from jumpstarter.common.tls import TlsIdentity, default_names, write_secret
from jumpstarter.exporter import TcpListener, serve_gated
from jumpstarter.exporter.gate import ConnectionLimits
from jumpstarter.exporter.guard import raise_descriptor_limit
from jumpstarter_controller.admin_service import AdminService, add_admin_service
from jumpstarter_controller.client_service import ClientService, add_client_service
from jumpstarter_controller.config import load_config
from jumpstarter_controller.controller import Controller
from jumpstarter_controller.controller_service import ControllerService, add_controller_service
from jumpstarter_controller.credentials import Identity, TokenVerifier, mint_identity_token
from jumpstarter_controller.guard import ControllerGuard
from jumpstarter_controller.leadership import leadership
from jumpstarter_controller.model import Exporter
from jumpstarter_controller.router import Router, add_router_service
from jumpstarter_controller.router.tokens import mint_stream_token
from jumpstarter_controller.routing import RouterChoice
from jumpstarter_controller.state import StateDir
from jumpstarter_controller.store import Store, database_url

__all__ = ["ENDPOINT_FILE", "ServeOptions", "serve"]

logger = logging.getLogger(__name__)

DEFAULT_LISTEN = "127.0.0.1:8082"
ENDPOINT_FILE = "endpoint"
ROUTER_TOKEN_TTL = datetime.timedelta(minutes=30)
ADMIN_TOKEN_SECONDS = 10 * 365 * 86400.0
STOP_GRACE_SECONDS = 1.0


@dataclass(frozen=True)
class ServeOptions:
    state_dir: Path
    listen: str = DEFAULT_LISTEN
    database: str | None = None
    config: Path | None = None
    dashboard: tuple[str, int] | None = None
    """The dashboard's HOST:PORT (jumpstarter_controller.dashboard), or None for none."""


def parse_listen(text: str) -> tuple[str, int]:
    host, separator, port = text.rpartition(":")
    if not separator or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--listen takes HOST:PORT (such as 0.0.0.0:8082, or 127.0.0.1:0 for any port), not {text!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def advertised(host: str, port: int) -> str:
    """The address to give clients: the listen host, or this host's name for a wildcard."""
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def serve(
    options: ServeOptions,
    on_ready: Callable[[str, Path], None],
    on_standby: Callable[[], None] = lambda: None,
    on_dashboard: Callable[[str], None] = lambda url: None,
) -> None:
    """Serve until SIGTERM or SIGINT. `on_ready(endpoint, ca_path)` is called once serving,
    `on_standby()` when another controller holds the database."""
    host, port = parse_listen(options.listen)
    config = load_config(options.config)
    state = StateDir(options.state_dir)
    url = database_url(options.database, state.database_path)
    raise_descriptor_limit()
    async with AsyncExitStack() as stack:
        # With PostgreSQL, only the holder of the database's lock serves (the others wait for it),
        # and only it migrates the schema.
        await stack.enter_async_context(leadership(url, on_wait=lambda: on_standby()))
        store = await Store.open(url)
        stack.push_async_callback(store.close)
        key = state.signing_key()
        verifier = TokenVerifier(key.public_key())
        controller = await Controller.open(store, config, verifier)
        admin_path = state.admin_token_path
        if not admin_path.exists():
            token, _ = mint_identity_token(key, Identity("admin", "", "admin", 1), lifetime=ADMIN_TOKEN_SECONDS)
            write_secret(admin_path, token.encode())

        guard = ControllerGuard(controller)
        stack.callback(guard.close)
        router = Router(state.verify_key())
        stack.callback(router.close)
        choice = RouterChoice(config.routers, "")

        def mint_router(lease_key: tuple[str, str], exporter: Exporter) -> tuple[str, str]:
            endpoint = choice.pick(exporter.labels)
            token = mint_stream_token(key, stream_id=str(uuid.uuid4()), lease=lease_key[1], ttl=ROUTER_TOKEN_TTL)
            return endpoint, token

        def mint_identity(identity: Identity) -> tuple[str, float]:
            return mint_identity_token(key, identity)

        dashboard_url: list[str] = []  # set once the dashboard serves

        def login_link() -> str | None:
            from jumpstarter_controller.dashboard import login_link as link

            return link(dashboard_url[0], key) if dashboard_url else None

        admin = AdminService(controller, mint_identity, login_link)

        def make_server(
            interceptors: list[grpc.aio.ServerInterceptor] | None, server_options: list[tuple[str, Any]]
        ) -> grpc.aio.Server:
            server = grpc.aio.server(
                interceptors=[guard, *(interceptors or [])], options=[*SERVER_OPTIONS, *server_options]
            )
            add_controller_service(server, ControllerService(controller, mint_router))
            add_client_service(server, ClientService(controller, mint_identity))
            add_admin_service(server, admin)
            add_router_service(server, router)
            return server

        names = list(dict.fromkeys([*default_names(host), host]))
        certificate, private_key = state.issue_server_certificate(names, options.state_dir / "controller-tls")
        listener = TcpListener(
            host=host,
            port=port,
            tls=TlsIdentity.load(certificate, private_key),
            limits=ConnectionLimits(per_peer=config.limits.connections_per_peer),
        )
        gate = await stack.enter_async_context(serve_gated(listener, make_server))
        guard.describe_peer = gate.describe_peer
        router.describe_peer = gate.describe_peer
        admin.describe_peer = gate.describe_peer
        endpoint = advertised(host, gate.port)
        choice.builtin_endpoint = endpoint
        (options.state_dir / ENDPOINT_FILE).write_text(endpoint + "\n")
        web = None
        if options.dashboard is not None:
            from jumpstarter_controller.dashboard import DashboardOptions, bind, run_dashboard

            web = DashboardOptions(bind(*options.dashboard), certificate, private_key, state.verify_key(),
                                   options.state_dir, advertised(host, 0).rpartition(":")[0],
                                   config.dashboard.session_lifetime)  # fmt: skip
            stack.callback(web.listener.close)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(controller.run_writer)
            if web is not None:
                dashboard_url.append(await tasks.start(run_dashboard, controller, router, web))
                on_dashboard(dashboard_url[0])
            on_ready(endpoint, state.ca_path)
            tasks.start_soon(controller.run_timers)
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    break
            tasks.cancel_scope.cancel()
        logger.info("stopping at %s", time.strftime("%H:%M:%S"))
