"""`jmp controller run`: the lab controller (a plug-in command of `jmp`)."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

DEFAULT_LISTEN = "127.0.0.1:8082"


def _say(message: str) -> None:
    click.echo(f"jmp controller: {message}", err=True)


@click.group("controller")
def controller() -> None:
    """The lab controller: leases on shared hardware (clients, exporters, a router)."""


@controller.command("run")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="keys, certificates, the admin credential and (by default) the SQLite database")  # fmt: skip
@click.option("--listen", default=DEFAULT_LISTEN, show_default=True, help="HOST:PORT of the TLS port")
@click.option("--database", default=None, help="postgresql://USER@HOST/DB (default: SQLite in the state dir)")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="YAML: routers, policies, limits")  # fmt: skip
@click.option("--dashboard", default=None, metavar="HOST:PORT",
              help="the web dashboard and /metrics (default: the --listen host, its port + 2)")  # fmt: skip
@click.option("--no-dashboard", is_flag=True, help="serve no dashboard")
@click.option("--log-level", default="WARNING", show_default=True)
def run(state_dir: Path, listen: str, database: str | None, config_path: Path | None, dashboard: str | None,
        no_dashboard: bool, log_level: str) -> None:  # fmt: skip
    """Serve ControllerService, ClientService and a router on one TLS port until SIGTERM."""
    import anyio
    import grpc
    from sqlalchemy.exc import SQLAlchemyError

    from jumpstarter_controller.config import ConfigError
    from jumpstarter_controller.server import ServeOptions, parse_listen, serve
    from jumpstarter_controller.state import StateDirError

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        host, port = parse_listen(listen)
    except ValueError as error:
        raise click.UsageError(str(error)) from None
    web: tuple[str, int] | None = None
    if dashboard is not None and no_dashboard:
        raise click.UsageError("give --dashboard HOST:PORT or --no-dashboard, not both")
    if not no_dashboard:
        from jumpstarter_controller.dashboard import default_listen

        try:
            web = parse_listen(dashboard) if dashboard is not None else default_listen(host, port)
        except ValueError as error:
            raise click.UsageError(str(error).replace("--listen", "--dashboard")) from None

    def ready(endpoint: str, ca: Path) -> None:
        click.echo(f"controller serving on {endpoint}")
        click.echo(f"CA certificate: {ca}")
        sys.stdout.flush()

    def standby() -> None:
        _say("another controller holds the database: standing by until it stops")

    try:
        options = ServeOptions(state_dir, listen, database, config_path, dashboard=web)
        anyio.run(serve, options, ready, standby, lambda url: click.echo(f"dashboard on {url}"))
    except (ConfigError, StateDirError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    except SQLAlchemyError as error:
        cause = getattr(error, "orig", None) or error
        raise click.ClickException(f"cannot use the database: {str(cause).splitlines()[0]}") from None
    except OSError as error:  # a port in use, a database that cannot be reached
        raise click.ClickException(str(error)) from None
    except grpc.RpcError as error:  # pragma: no cover - a port gRPC cannot bind
        raise click.ClickException(str(error)) from None
