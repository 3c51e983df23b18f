"""`jmp`: the jumpstarter command line (exporters, shells, drivers), and the commands other distributions plug in."""

from __future__ import annotations

import click

from jumpstarter.cli.config import config
from jumpstarter.cli.driver import driver
from jumpstarter.cli.exporter import exporter, run_alias
from jumpstarter.cli.lab_commands import create, delete, get, update
from jumpstarter.cli.plugins import PluginProgram
from jumpstarter.cli.shell import shell


@click.group("jmp", cls=PluginProgram, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="jumpstarter-core", prog_name="jmp")  # read when asked: not at `j`'s start
def main() -> None:
    """Test real hardware from anywhere: serve drivers, and drive them."""


main.add_command(config)
main.add_command(driver)
main.add_command(exporter)
main.add_command(run_alias)
main.add_command(shell)
main.add_command(create)
main.add_command(get)
main.add_command(update)
main.add_command(delete)
