"""`jmp create lease`, `jmp get leases|exporters`, `jmp update lease`, `jmp delete lease`.

The original's command shapes: tables for people, ``-o json|yaml|name`` for scripts (``-o
name`` prints bare names, one a line: ``JMP_LEASE=$(jmp create lease -l board=rpi4 -o name)``).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import click

from jumpstarter.cli.lab_options import (
    Duration,
    client_options,
    joined,
    output_option,
    run_lab,
    selector_option,
)
from jumpstarter.config.durations import DURATION_HELP, format_duration

if TYPE_CHECKING:  # gRPC and the protocol load when a command runs, not when `jmp` starts
    from jumpstarter.client.lab import LabClient
    from jumpstarter.client.v1 import client_pb2

__all__ = ["create", "delete", "get", "update"]


@click.group()
def create() -> None:
    """Create a resource of a lab controller (a lease)."""


@click.group()
def get() -> None:
    """Show resources of a lab controller (leases, exporters)."""


@click.group()
def update() -> None:
    """Change a resource of a lab controller (extend a lease)."""


@click.group()
def delete() -> None:
    """Delete resources of a lab controller (release leases)."""


# -- output ------------------------------------------------------------------------------------


def _bare(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def _document(message: Any) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict

    data: dict[str, Any] = MessageToDict(message)
    data["name"] = _bare(message.name)
    return data


def _emit(
    output: str | None, items: Sequence[Any], table: Callable[[Sequence[Any]], list[list[str]]], single: bool = False
) -> None:
    """Print `items` as `output` asks: names, JSON or YAML documents (one, if `single`), or a table."""
    if output == "name":
        for item in items:
            click.echo(_bare(item.name))
    elif output == "json":
        documents = [_document(item) for item in items]
        click.echo(json.dumps(documents[0] if single else documents, indent=2))
    elif output == "yaml":
        import yaml

        documents = [_document(item) for item in items]
        click.echo(yaml.safe_dump(documents[0] if single else documents, sort_keys=False).rstrip())
    else:
        rows = table(items)
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def _when(seconds: float | None) -> str:
    """A time, and how far it is from now, in whole seconds: ``2026-12-03 13:22:43 (in 59m55s)``, ``(... 5m ago)``."""
    if seconds is None:
        return "-"
    left = seconds - time.time()  # rounded after its sign is known: a lease ended 0.3 s ago "ended 0s ago"
    span = f"in {format_duration(round(left))}" if left >= 0 else f"{format_duration(round(-left))} ago"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) + f" ({span})"


def _state(lease: client_pb2.Lease) -> str:
    from jumpstarter.client.lab import is_ready

    if lease.HasField("effective_end_time"):
        return "Ended"
    if is_ready(lease):
        return "Ready"
    return lease.conditions[-1].reason if lease.conditions else "Pending"


def lease_end(lease: client_pb2.Lease) -> float | None:
    """When the lease ends (or ended): its begin plus its duration, or its end time."""
    if lease.HasField("effective_end_time"):
        return float(lease.effective_end_time.ToSeconds())
    if lease.HasField("end_time"):
        return float(lease.end_time.ToSeconds())
    if lease.HasField("effective_begin_time") and lease.HasField("duration"):
        return float(lease.effective_begin_time.ToSeconds() + lease.duration.ToTimedelta().total_seconds())
    return None


def _lease_rows(leases: Sequence[client_pb2.Lease]) -> list[list[str]]:
    rows = [["NAME", "SELECTOR", "CLIENT", "EXPORTER", "STATE", "DURATION", "ENDS"]]
    for lease in leases:
        duration = lease.duration.ToTimedelta().total_seconds() if lease.HasField("duration") else 0
        rows.append([
            _bare(lease.name), lease.selector or "-", _bare(lease.client) or "-", _bare(lease.exporter) or "-",
            _state(lease), format_duration(duration) if duration else "-", _when(lease_end(lease)),
        ])  # fmt: skip
    return rows


# -- leases ------------------------------------------------------------------------------------


@create.command("lease")
@client_options
@selector_option
@click.option("-n", "--name", "exporter_name", metavar="EXPORTER", help="Lease this exporter by its name.")
@click.option("--duration", type=Duration(), required=True, help=f"How long: {DURATION_HELP}.")
@click.option("--lease-id", default="", metavar="NAME", help="The lease's name (default: one the controller makes).")
@output_option()
def create_lease(
    client: str | None,
    client_config: str | None,
    selector: tuple[str, ...],
    exporter_name: str | None,
    duration: float,
    lease_id: str,
    output: str | None,
) -> None:
    """Lease an exporter for later: `jmp shell --lease NAME` uses it, `jmp delete lease NAME` releases it.

    \b
    Example:
      JMP_LEASE=$(jmp create lease -l board=rpi4 --duration 1h -o name)
      jmp shell --lease "$JMP_LEASE" -- j power on
      jmp delete lease "$JMP_LEASE"
    """
    if not joined(selector) and not exporter_name:
        raise click.UsageError("give a selector (-l key=value) or an exporter's name (-n NAME)")

    async def call(lab: LabClient) -> client_pb2.Lease:
        return await lab.create_lease(joined(selector), duration, exporter_name=exporter_name or "", lease_id=lease_id)

    _emit(output, [run_lab(client, client_config, call)], _lease_rows, single=True)


@get.command("leases")
@client_options
@selector_option
@click.option("-a", "--all", "include_ended", is_flag=True, help="Include the leases that have ended.")
@click.option("-A", "--all-clients", is_flag=True, help="Include the leases of every client of the namespace.")
@output_option()
def get_leases(
    client: str | None,
    client_config: str | None,
    selector: tuple[str, ...],
    include_ended: bool,
    all_clients: bool,
    output: str | None,
) -> None:
    """List your leases (-A: every client's of the namespace)."""

    async def call(lab: LabClient) -> list[client_pb2.Lease]:
        leases = await lab.list_leases(joined(selector), only_active=not include_ended)
        return [x for x in leases if all_clients or _bare(x.client) == lab.name]

    _emit(output, run_lab(client, client_config, call), _lease_rows)


@update.command("lease")
@client_options
@click.argument("name")
@click.option("--duration", type=Duration(), required=True, help=f"The lease's whole duration: {DURATION_HELP}.")
@output_option()
def update_lease(client: str | None, client_config: str | None, name: str, duration: float, output: str | None) -> None:
    """Extend lease NAME: its whole duration becomes DURATION (counted from its begin).

    A lease that a jmp shell (or lease()) of yours holds on this machine stays held in short
    steps, now up to DURATION, so that it is still released soon if that client is killed.
    """

    async def call(lab: LabClient) -> client_pb2.Lease:
        from jumpstarter.client.holding import ask_holder
        from jumpstarter.client.lab import LabError

        refused = await ask_holder(name, duration)
        if refused is None:
            return await lab.update_lease(name, duration)
        if refused:
            raise LabError(refused)
        lease = await lab.get_lease(name)
        lease.duration.FromTimedelta(timedelta(seconds=duration))  # what was asked; the holder steps towards it
        return lease

    _emit(output, [run_lab(client, client_config, call)], _lease_rows, single=True)


@click.command("leases")
@client_options
@click.argument("names", nargs=-1)
@selector_option
@click.option("-a", "--all", "every", is_flag=True, help="Release all your active leases.")
@output_option(("name",))
def delete_leases(
    client: str | None,
    client_config: str | None,
    names: tuple[str, ...],
    selector: tuple[str, ...],
    every: bool,
    output: str | None,
) -> None:
    """Release leases: by NAME, those matching -l, or all yours (--all)."""
    if not names and not joined(selector) and not every:
        raise click.UsageError("name the leases to release, or give -l key=value or --all")

    async def call(lab: LabClient) -> list[str]:
        targets = list(names)
        if joined(selector) or every:
            leases = await lab.list_leases(joined(selector))
            targets += [_bare(x.name) for x in leases if _bare(x.client) == lab.name]
        for target in targets:
            await lab.delete_lease(target)
        return targets

    for name in run_lab(client, client_config, call):
        click.echo(name if output == "name" else f"lease {name} released")


delete.add_command(delete_leases, "lease")
delete.add_command(delete_leases, "leases")


# -- exporters ---------------------------------------------------------------------------------


def _status(number: int) -> str:
    from jumpstarter.v1 import common_pb2

    return str(common_pb2.ExporterStatus.Name(number)).removeprefix("EXPORTER_STATUS_")


@get.command("exporters")
@client_options
@selector_option
@click.option(
    "--with", "with_", multiple=True, metavar="FIELDS", help="Add columns: leases, online, status (comma-separated)."
)
@output_option()
def get_exporters(
    client: str | None, client_config: str | None, selector: tuple[str, ...], with_: tuple[str, ...], output: str | None
) -> None:
    """List the exporters of the namespace; --with leases shows who holds each, until when, and how many wait."""
    extra = {part.strip() for item in with_ for part in item.split(",") if part.strip()}
    unknown = extra - {"leases", "online", "status"}
    if unknown:
        raise click.UsageError(f"--with takes leases, online and status, not {', '.join(sorted(unknown))}")

    async def call(lab: LabClient) -> tuple[list[client_pb2.Exporter], list[client_pb2.Lease]]:
        exporters = await lab.list_exporters(joined(selector))
        return exporters, (await lab.list_leases() if "leases" in extra else [])

    exporters, leases = run_lab(client, client_config, call)

    def table(items: Sequence[client_pb2.Exporter]) -> list[list[str]]:
        from jumpstarter.client.lab import is_ready

        header = ["NAME", "LABELS"]
        header += ["ONLINE"] if "online" in extra else []
        header += ["STATUS"] if "status" in extra else []
        header += ["LEASED BY", "UNTIL", "WAITING"] if "leases" in extra else []
        rows = [header]
        for exporter in items:
            row = [_bare(exporter.name), ",".join(f"{k}={v}" for k, v in sorted(exporter.labels.items())) or "-"]
            row += ["yes" if exporter.online else "no"] if "online" in extra else []
            row += [_status(exporter.status)] if "status" in extra else []
            if "leases" in extra:
                holding = next((x for x in leases if _bare(x.exporter) == _bare(exporter.name) and is_ready(x)), None)
                waiting = sum(1 for x in leases if not x.exporter and _wants(x, exporter))
                row += [_bare(holding.client), _when(lease_end(holding))] if holding else ["-", "-"]
                row += [str(waiting)]
            rows.append(row)
        return rows

    _emit(output, exporters, table)


_TERM = re.compile(r"^\s*(!?)([\w./-]+)\s*(?:(==|=|!=)\s*([\w./-]*)|\s+(in|notin)\s*\(([^)]*)\))?\s*$")


def _wants(lease: client_pb2.Lease, exporter: client_pb2.Exporter) -> bool:
    """Whether waiting `lease` could take `exporter` (its name, or its selector over the labels)."""
    if lease.HasField("exporter_name") and lease.exporter_name:
        return lease.exporter_name == _bare(exporter.name)
    labels = exporter.labels
    for term in re.split(r",(?![^(]*\))", lease.selector):
        match = _TERM.match(term)
        if match is None:
            return False
        negated, key, operator, value, set_operator, values = match.groups()
        if operator in ("=", "=="):
            ok = labels.get(key) == value
        elif operator == "!=":
            ok = labels.get(key) != value
        elif set_operator is not None:
            inside = labels.get(key) in {v.strip() for v in values.split(",")}
            ok = inside if set_operator == "in" else not inside
        else:
            ok = (key in labels) != bool(negated)
        if not ok:
            return False
    return True
