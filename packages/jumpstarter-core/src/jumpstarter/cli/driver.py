"""`jmp driver`: the installed drivers."""

from __future__ import annotations

import json

import click

from jumpstarter.cli.driver_new import new_driver
from jumpstarter.registry import installed_drivers


@click.group()
def driver() -> None:
    """Drivers: list the installed ones, or start a new driver package."""


@driver.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_drivers(as_json: bool) -> None:
    """List the drivers of the installed distributions (entry points of the jumpstarter.drivers group).

    An exporter config names a driver by its NAME; when two distributions register the
    same name, by DISTRIBUTION:NAME.
    """
    rows = []
    for entry in installed_drivers():
        try:
            description = entry.description()
        except Exception as error:  # a broken distribution must not hide the others
            description = f"(cannot be imported: {type(error).__name__}: {error})"
        rows.append(
            {
                "name": entry.name,
                "class": entry.class_path,
                "distribution": entry.distribution,
                "version": entry.version,
                "description": description,
            }
        )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(
            "No drivers are installed: install a driver package from the wheels built from the jumpstarter "
            "repository, such as: pip install --find-links DIST jumpstarter-driver-power"
        )
        return
    columns = ("name", "class", "distribution", "version", "description")
    widths = {column: max(len(column), *(len(row[column]) for row in rows)) for column in columns[:-1]}
    click.echo("  ".join(column.upper().ljust(widths.get(column, 0)) for column in columns).rstrip())
    for row in rows:
        click.echo("  ".join(row[column].ljust(widths.get(column, 0)) for column in columns).rstrip())


driver.add_command(new_driver)
