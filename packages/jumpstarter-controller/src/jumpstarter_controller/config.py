"""The controller's configuration file (``--config FILE``, YAML): routers, policies and limits.

routers:                      # separate `jmp router run` processes (else the built-in one)
  - endpoint: router-a.lab.example:8083
    labels: {site: a}         # exporters with site=a get this router
policies:                     # the first that matches a client applies
  - name: ci
    client_selector: team=ci  # or client: NAME; namespace: NS (default: any)
    max_duration: 2h
    priority: 10
limits:
  leases_per_client: 100      # active (waiting or granted) leases one client may hold
  max_duration: 7d            # the cap when no policy gives one
  max_tags: 10
  restart_grace: 60s          # a started lease whose time ran out while the controller was away lasts this
                              # long after it starts again: its holder's chance to extend it
dashboard:
  session_lifetime: 8h        # how long a dashboard login lasts
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from jumpstarter.config import durations
from jumpstarter.config.durations import DURATION_HELP
from jumpstarter_controller.selectors import InvalidSelector, Selector, parse

__all__ = [
    "ConfigError",
    "ControllerConfig",
    "DashboardSettings",
    "Policy",
    "RouterEntry",
    "load_config",
    "parse_duration",
]


class ConfigError(ValueError):
    """The configuration file is unreadable or wrong: the message names the file and the field."""


def parse_duration(value: Any) -> float:
    """Seconds from a number (YAML's ``90``) or a text as every command takes it (``30m``, ``2h``, ``1d12h``)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"{value!r} is not a duration: write {DURATION_HELP}")
    return durations.parse_duration(str(value))


class RouterEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    endpoint: str
    labels: dict[str, str] = Field(default_factory=dict)


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    namespace: str | None = None
    client: str | None = None
    client_selector: str | None = None
    max_duration: float | None = None
    priority: int = 0

    @field_validator("max_duration", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float | None:
        return None if value is None else parse_duration(value)

    @field_validator("client_selector")
    @classmethod
    def _selector(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse(value)
            except InvalidSelector as error:
                raise ValueError(str(error)) from None
        return value

    def applies_to(self, namespace: str, name: str, labels: dict[str, str]) -> bool:
        if self.namespace is not None and self.namespace != namespace:
            return False
        if self.client is not None and self.client != name:
            return False
        selector: Selector = parse(self.client_selector) if self.client_selector else parse("")
        return selector.matches(labels)


class Limits(BaseModel):
    model_config = ConfigDict(extra="forbid")
    leases_per_client: int = 100
    max_duration: float = 7 * 86400.0
    max_tags: int = 10
    connections_per_peer: int = 64
    """Connections one host (or IPv6 /64) may hold open to the port: a lab's exporters are separate hosts."""
    restart_grace: float = 60.0
    """After the controller starts, how long a started lease whose time ran out while it was away still lasts.

    Our clients hold a lease 30 s at a time and extend it every 10 s; while the controller is away
    they cannot, and its own downtime must not end their leases: they get this long to reach it again."""

    @field_validator("max_duration", "restart_grace", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)


class DashboardSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    session_lifetime: float = 8 * 3600.0
    """How long a dashboard login lasts."""

    @field_validator("session_lifetime", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        return parse_duration(value)


class ControllerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    routers: list[RouterEntry] = Field(default_factory=list)
    policies: list[Policy] = Field(default_factory=list)
    limits: Limits = Field(default_factory=Limits)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)

    def policy_for(self, namespace: str, name: str, labels: dict[str, str]) -> Policy | None:
        return next((p for p in self.policies if p.applies_to(namespace, name, labels)), None)


def load_config(path: Path | None) -> ControllerConfig:
    if path is None:
        return ControllerConfig()
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as error:
        raise ConfigError(f"cannot read the configuration {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    try:
        return ControllerConfig.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"{path}: {where}: {first['msg']}") from None
