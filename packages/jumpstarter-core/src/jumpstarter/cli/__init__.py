"""`jmp`: the jumpstarter command line."""

from __future__ import annotations

import importlib.metadata

import click

from jumpstarter.cli.driver import driver


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(importlib.metadata.version("jumpstarter-core"), prog_name="jmp")
def main() -> None:
    """Test real hardware from anywhere: serve drivers, and drive them."""


main.add_command(driver)
