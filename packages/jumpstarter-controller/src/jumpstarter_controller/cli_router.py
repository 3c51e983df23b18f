"""`jmp router`: a router process of the lab controller, apart from the controller."""

from __future__ import annotations

import click


@click.group("router")
def router() -> None:
    """Relay streams between clients and exporters for a lab controller."""
