"""`Composite`: a driver that only groups other drivers."""

from __future__ import annotations

from dataclasses import dataclass

from jumpstarter.driver.base import Driver


@dataclass(kw_only=True)
class Composite(Driver):
    """A container for child drivers, such as the root of an exporter's tree.

    Its client, `jumpstarter.client.CompositeClient`, reaches the children as attributes
    (``client.power.on()``).
    """

    @classmethod
    def client(cls) -> str:
        # The original jumpstarter names this client class; reporting the same path lets its
        # clients drive our exporters. Our client maps the path to jumpstarter.client.CompositeClient.
        return "jumpstarter_driver_composite.client.CompositeClient"
