"""`ConfigError`, apart from the YAML reader: commands catch it without loading yaml and pydantic."""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(ValueError):
    """A configuration file is wrong; the message says where and how to fix it."""
