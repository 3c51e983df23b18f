"""`CompositeClient`: the client of `jumpstarter.driver.Composite`."""

from __future__ import annotations

from dataclasses import dataclass

from jumpstarter.client.base import DriverClient


@dataclass(kw_only=True, eq=False)
class CompositeClient(DriverClient):
    """A group of driver clients, reachable as attributes: ``client.power.on()``."""
