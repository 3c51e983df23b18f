"""`jmp`: the jumpstarter command line."""

from __future__ import annotations

import importlib.metadata
import os

import click

# gRPC's core logs a refused TLS handshake (and more) on stderr at level INFO; the commands
# report such failures themselves, in one line. Set before grpc is imported (by `j` too).
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

from jumpstarter.cli.driver import driver
from jumpstarter.cli.exporter import exporter, run_alias
from jumpstarter.cli.shell import shell


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(importlib.metadata.version("jumpstarter-core"), prog_name="jmp")
def main() -> None:
    """Test real hardware from anywhere: serve drivers, and drive them."""


main.add_command(driver)
main.add_command(exporter)
main.add_command(run_alias)
main.add_command(shell)
