"""The lab's web dashboard and Prometheus metrics, served by `jmp controller run` on its own TLS port.

    async with anyio.create_task_group() as tasks:
        url = await tasks.start(run_dashboard, controller, router, options)

`run_dashboard` serves until cancelled (the controller's task group owns it): a Starlette app
(`_app`) on Hypercorn, in the controller's event loop, reading the controller only through
`_lab.Lab`.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskStatus

from jumpstarter_controller.dashboard._auth import SESSION_SECONDS, Sessions, mint_login_token

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey, EllipticCurvePublicKey

    from jumpstarter_controller.controller import Controller

__all__ = [
    "DASHBOARD_FILE",
    "DashboardOptions",
    "bind",
    "default_listen",
    "login_link",
    "mint_login_token",
    "run_dashboard",
]

DASHBOARD_FILE = "dashboard"
"""In the state directory: the dashboard's URL (for `jmp admin dashboard-login`)."""
PORT_OFFSET = 2  # beside the gRPC port (8082) and the router's (8083): 8084


def bind(host: str, port: int) -> socket.socket:
    """The dashboard's listening socket; OSError says, in one line, what to do when it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(128)
    except OSError as error:
        listener.close()
        raise OSError(f"the dashboard cannot listen on {host}:{port} ({error.strerror}): "
                      "give another --dashboard HOST:PORT, or --no-dashboard") from None  # fmt: skip
    return listener


@dataclass(frozen=True)
class DashboardOptions:
    listener: socket.socket
    """From `bind` (bound before the controller's tasks start, so that a taken port is a plain error);
    its owner closes it."""
    certificate: Path
    private_key: Path
    verify_key: EllipticCurvePublicKey
    state_dir: Path
    advertised_host: str
    session_seconds: float = SESSION_SECONDS
    """How long a login lasts (the configuration's dashboard.session_lifetime)."""


def login_link(url: str, key: EllipticCurvePrivateKey) -> str:
    """The dashboard at `url`'s one-time admin login link, signed with the controller's key."""
    return f"{url}login/once?t={mint_login_token(key)}"


def default_listen(grpc_host: str, grpc_port: int) -> tuple[str, int]:
    """The dashboard's default address: the gRPC port + 2 (any port when the gRPC port is 0)."""
    return grpc_host, (grpc_port + PORT_OFFSET if grpc_port else 0)


async def run_dashboard(
    controller: Controller, router: Any, options: DashboardOptions, *, task_status: TaskStatus[str]
) -> None:
    """Serve the dashboard until cancelled; `task_status.started(url)` once it listens."""
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    from jumpstarter_controller.dashboard._app import build_app
    from jumpstarter_controller.dashboard._lab import Lab
    from jumpstarter_controller.dashboard._metrics import Metrics

    lab = Lab(controller)
    metrics = Metrics(lab, router)
    sessions = Sessions(options.verify_key, controller.identify, lifetime=options.session_seconds)
    app = build_app(lab, sessions, metrics)
    listener = options.listener
    port = listener.getsockname()[1]
    config = Config()
    # Hypercorn takes the descriptor it is given as its own (and closes it): give it a copy.
    config.bind = [f"fd://{os.dup(listener.fileno())}"]
    config.certfile, config.keyfile = str(options.certificate), str(options.private_key)
    config.graceful_timeout = 1.0
    # HTTP/1.1 only: Hypercorn's HTTP/2 loses streams when a page's fetches meet its open event stream.
    config.alpn_protocols = ["http/1.1"]
    config.accesslog = None
    config.errorlog = None
    host = options.advertised_host
    url = f"https://{'[' + host + ']' if ':' in host else host}:{port}/"
    (options.state_dir / DASHBOARD_FILE).write_text(url + "\n")
    lab.attach()
    stopped = anyio.Event()

    async def run() -> None:
        # Shielded: Hypercorn stops by its shutdown trigger (finishing or cutting open requests within
        # graceful_timeout), not by a cancellation thrown into its tasks, which it does not expect.
        with anyio.CancelScope(shield=True):
            await serve(app, config, shutdown_trigger=stopped.wait)  # type: ignore[arg-type]

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(run)
        task_status.started(url)
        try:
            await anyio.sleep_forever()
        finally:
            lab.detach()  # ends the open change feeds
            stopped.set()
