"""`jmp admin`: clients, exporters, leases and events of a lab controller.

On the controller's host, ``--state-dir DIR`` finds the endpoint, the CA and the admin
credential there; from elsewhere, ``--endpoint HOST:PORT --tls-ca FILE --token-file FILE``
(the state dir's ``ca.pem`` and ``admin.token``, copied). Tokens go to files (0600), never
to the terminal or the command line.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

KINDS = click.Choice(["client", "exporter"])
# What a new client may import by default: the jumpstarter driver packages' client classes.
DEFAULT_ALLOW = ["jumpstarter_driver_*"]


def _labels(values: tuple[str, ...]) -> dict[str, str]:
    labels = {}
    for value in values:
        key, separator, text = value.partition("=")
        if not separator or not key:
            raise click.UsageError(f"--label takes KEY=VALUE, not {value!r}")
        labels[key] = text
    return labels


@click.group("admin")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="the controller's state directory (on its host)")  # fmt: skip
@click.option("--endpoint", default=None, help="HOST:PORT of a remote controller")
@click.option("--tls-ca", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="the controller's CA certificate (its state dir's ca.pem)")  # fmt: skip
@click.option("--token-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="the admin credential (its state dir's admin.token)")  # fmt: skip
@click.pass_context
def admin(ctx: click.Context, state_dir: Path | None, endpoint: str | None, tls_ca: Path | None,
          token_file: Path | None) -> None:  # fmt: skip
    """Manage a lab controller: clients, exporters, leases, events."""
    from jumpstarter_controller.admin_client import AdminError, Connection

    remote = (endpoint, tls_ca, token_file)

    def connect() -> Connection:
        # Checked here, when a subcommand needs the controller, so that `jmp admin create --help` works alone.
        if state_dir is not None and any(remote):
            raise click.UsageError("give either --state-dir or --endpoint/--tls-ca/--token-file, not both", ctx)
        if state_dir is None and not all(remote):
            raise click.UsageError("give --state-dir DIR (on the controller's host) or all of --endpoint, --tls-ca "
                                   "and --token-file", ctx)  # fmt: skip
        try:
            if state_dir is not None:
                return Connection.from_state_dir(state_dir)
            assert endpoint is not None and tls_ca is not None and token_file is not None
            return Connection.remote(endpoint, tls_ca, token_file)
        except AdminError as error:
            raise click.ClickException(str(error)) from None

    ctx.obj = connect


def _call(ctx: click.Context, op: str, **fields: Any) -> Any:
    from jumpstarter_controller.admin_client import AdminError

    connection = ctx.obj()
    try:
        return connection, connection.call(op, **fields)
    except AdminError as error:
        raise click.ClickException(str(error)) from None


@admin.command("create")
@click.argument("kind", type=KINDS)
@click.argument("name")
@click.option("--namespace", "-n", default="default", show_default=True)
@click.option("--label", "-l", "labels", multiple=True, help="KEY=VALUE (repeat)")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="where to write the config file with the token (0600)")  # fmt: skip
@click.option(
    "--allow", multiple=True, help="client class patterns a client may import (default: jumpstarter_driver_*)"
)
@click.option("--unsafe", is_flag=True, help="let the client import any client class")
@click.pass_context
def create(ctx: click.Context, kind: str, name: str, namespace: str, labels: tuple[str, ...], out: Path,
           allow: tuple[str, ...], unsafe: bool) -> None:  # fmt: skip
    """Create a client or an exporter and write its config file (the original's format)."""
    from jumpstarter_controller.admin_client import write_config

    parsed = _labels(labels)
    connection, answer = _call(ctx, f"create_{kind}", namespace=namespace, name=name, labels=parsed)
    write_config(out, kind, connection, namespace, name, answer["token"], list(allow) or DEFAULT_ALLOW, unsafe)
    click.echo(f"{kind} {namespace}/{name} created; its config is in {out}")


@admin.command("rotate")
@click.argument("kind", type=KINDS)
@click.argument("name")
@click.option("--namespace", "-n", default="default", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="where to write the config file with the new token (0600)")  # fmt: skip
@click.pass_context
def rotate(ctx: click.Context, kind: str, name: str, namespace: str, out: Path) -> None:
    """Give a client or exporter a new token (the old one stops working at once)."""
    from jumpstarter_controller.admin_client import write_config

    connection, answer = _call(ctx, f"rotate_{kind}", namespace=namespace, name=name)
    write_config(out, kind, connection, namespace, name, answer["token"], DEFAULT_ALLOW)
    click.echo(f"{kind} {namespace}/{name} has a new token; its config is in {out}")


@admin.command("delete")
@click.argument("kind", type=KINDS)
@click.argument("name")
@click.option("--namespace", "-n", default="default", show_default=True)
@click.pass_context
def delete(ctx: click.Context, kind: str, name: str, namespace: str) -> None:
    """Delete a client or exporter: its tokens stop working at once, its leases end."""
    _call(ctx, f"delete_{kind}", namespace=namespace, name=name)
    click.echo(f"{kind} {namespace}/{name} deleted")


def _set_enabled(ctx: click.Context, name: str, namespace: str, enabled: bool) -> None:
    _, answer = _call(ctx, "enable_exporter" if enabled else "disable_exporter", namespace=namespace, name=name)
    state = "enabled" if enabled else "disabled"
    if not answer["changed"]:
        click.echo(f"exporter {namespace}/{name} was {state} already")
    elif enabled:
        click.echo(f"exporter {namespace}/{name} enabled: it takes new leases again")
    else:
        click.echo(f"exporter {namespace}/{name} disabled: its current lease runs to its end; it takes no new one")


@admin.command("enable")
@click.argument("kind", type=click.Choice(["exporter"]))
@click.argument("name")
@click.option("--namespace", "-n", default="default", show_default=True)
@click.pass_context
def enable(ctx: click.Context, kind: str, name: str, namespace: str) -> None:
    """Let a disabled exporter take new leases again."""
    _set_enabled(ctx, name, namespace, True)


@admin.command("disable")
@click.argument("kind", type=click.Choice(["exporter"]))
@click.argument("name")
@click.option("--namespace", "-n", default="default", show_default=True)
@click.pass_context
def disable(ctx: click.Context, kind: str, name: str, namespace: str) -> None:
    """Drain an exporter: its current lease runs to its end, and it takes no new one (jmp admin enable undoes)."""
    _set_enabled(ctx, name, namespace, False)


@admin.command("get")
@click.argument("what", type=click.Choice(["clients", "exporters", "leases", "events"]))
@click.option("--all", "everything", is_flag=True, help="leases: ended ones too")
@click.pass_context
def get(ctx: click.Context, what: str, everything: bool) -> None:
    """List clients, exporters, leases (active, or --all) or the audit events."""
    _, rows = _call(ctx, f"get_{what}", all=everything)
    if what == "clients":
        _table(["NAMESPACE", "NAME", "LABELS"], [[r["namespace"], r["name"], _kv(r["labels"])] for r in rows])
    elif what == "exporters":
        _table(
            ["NAMESPACE", "NAME", "ONLINE", "ENABLED", "LEASE", "LABELS"],
            [[r["namespace"], r["name"], _yes(r["online"]), _yes(r["enabled"]), r["lease"] or "", _kv(r["labels"])]
             for r in rows],
        )  # fmt: skip
    elif what == "leases":
        _table(
            ["NAMESPACE", "NAME", "CLIENT", "SELECTOR", "EXPORTER", "STATE"],
            [[r["namespace"], r["name"], r["client"], r["selector"], r["exporter"] or "", _state(r)] for r in rows],
        )
    else:
        _table(
            ["TIME", "WHO", "WHAT", "NAMESPACE", "LEASE", "EXPORTER", "CLIENT", "WHY"],
            [[time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(r["at"])), r["who"], r["what"], r["namespace"],
              r["lease"], r["exporter"], r["client"], r["why"]] for r in rows],
        )  # fmt: skip


def _kv(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _state(row: dict[str, Any]) -> str:
    conditions = row["conditions"]
    last = conditions[-1] if conditions else None
    if last is None:
        return ""
    return f"{last['type']}={last['status']} ({last['reason']}: {last['message']})"


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=False)]
    for row in [header, *rows]:
        click.echo("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip())


@admin.command("dashboard-login")
@click.pass_context
def dashboard_login(ctx: click.Context) -> None:
    """Print a one-time link that logs a browser in to the dashboard as the admin (single use, 2 minutes)."""
    from jumpstarter_controller.dashboard import DASHBOARD_FILE

    # The controller signs the link and writes to its event log who asked for one, local or remote.
    state_dir = ctx.parent.params.get("state_dir") if ctx.parent else None
    if state_dir is not None and not (state_dir / DASHBOARD_FILE).is_file():
        raise click.ClickException(f"no dashboard has run from {state_dir}: start jmp controller run without "
                                   "--no-dashboard")  # fmt: skip
    _, answer = _call(ctx, "dashboard_login", via="local" if state_dir is not None else "remote")
    click.echo(answer["link"])
