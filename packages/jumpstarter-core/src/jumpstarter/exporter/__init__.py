"""Exporter side: serve a driver tree over the jumpstarter.v1 protocol."""

from jumpstarter.exporter.session import Session

__all__ = ["Session"]
