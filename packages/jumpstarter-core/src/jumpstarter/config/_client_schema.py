"""The fields of a client configuration (the original's ``ClientConfig``), and reading one."""

from __future__ import annotations

from typing import Any, Final, Literal

import yaml
from pydantic import Field

from jumpstarter.config._connection import ENDPOINT_RULE, Endpoint, Section, TLSConfig
from jumpstarter.config._messages import kind_of
from jumpstarter.config.meta import ObjectMeta
from jumpstarter.config.yaml import Located

API_VERSION: Final = "jumpstarter.dev/v1alpha1"
KIND: Final = "ClientConfig"
# Sections where null means "not given" (the original writes and reads a null grpcOptions).
_OPTIONAL_SECTIONS = ("metadata", "tls", "grpcOptions", "drivers", "shell", "leases")


class DriversConfig(Section):
    """Which client classes the exporters' reports may make this client import."""

    allow: list[str] = Field([], description="a list of glob patterns over client class import paths")
    unsafe: bool = Field(False, description="true or false: true allows any client class")


class ShellConfig(Section):
    """Settings of the original's `jmp shell` (kept so that its files load)."""

    use_profiles: bool = False


class LeasesConfig(Section):
    """How long the client waits for a lease and for an exporter it lost (seconds)."""

    acquisition_timeout: int = Field(7200, ge=5, description="a whole number of seconds, at least 5")
    retry_timeout: float = Field(300.0, ge=0, description="a number of seconds, 0 or more")


class ClientConfig(Section):
    """A client's configuration: who it is in a lab, where the lab's controller is, what it may import."""

    api_version: Literal["jumpstarter.dev/v1alpha1"] = Field(API_VERSION, alias="apiVersion")
    kind: str = KIND
    metadata: ObjectMeta | None = None
    endpoint: Endpoint | None = Field(None, description=ENDPOINT_RULE)
    token: str | None = Field(None, repr=False, description="text: the client's token")  # kept out of logs
    refresh_token: str | None = Field(None, repr=False, description="text: the OIDC refresh token")
    tls: TLSConfig = Field(default_factory=TLSConfig)
    grpc_options: dict[str, str | int] = Field(default_factory=dict, alias="grpcOptions")
    drivers: DriversConfig = Field(default_factory=DriversConfig)
    shell: ShellConfig = Field(default_factory=ShellConfig)
    leases: LeasesConfig = Field(default_factory=LeasesConfig)

    def to_yaml(self) -> str:
        """The file's text, in the original's order of keys; sections left at their defaults are left out."""
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        for section in ("grpcOptions", "shell", "leases"):
            if section not in self.model_fields_set or not data.get(section):
                data.pop(section, None)
        if data.get("tls") == TLSConfig().model_dump(mode="json"):
            data.pop("tls")
        return yaml.safe_dump(data, sort_keys=False)


def client_config(located: Located) -> ClientConfig:
    """The client configuration in `located` (empty: the defaults), checked; ConfigError otherwise."""
    data = located.data
    if data is None:
        return ClientConfig()
    if not isinstance(data, dict):
        raise located.error(
            (),
            f"a client configuration is a mapping, not {kind_of(data)}",
            "start from the example in the documentation",
        )
    values: dict[Any, Any] = {
        key: value for key, value in data.items() if not (value is None and key in _OPTIONAL_SECTIONS)
    }
    config = located.validate(ClientConfig, values)
    if config.kind != KIND:
        other = " (an exporter's configuration?)" if config.kind == "ExporterConfig" else ""
        raise located.error(("kind",), f"kind is {config.kind!r}{other}", f"use kind: {KIND}")
    return config


__all__ = ["API_VERSION", "KIND", "ClientConfig", "DriversConfig", "LeasesConfig", "ShellConfig", "client_config"]
