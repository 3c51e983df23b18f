"""The client configuration: which client classes a client may import.

``$XDG_CONFIG_HOME/jumpstarter/client.yaml`` (or the file ``JMP_CLIENT_CONFIG`` names):

    apiVersion: jumpstarter.dev/v1alpha1
    kind: ClientConfig
    metadata: {namespace: lab, name: alice}   # optional: the client's identity in a lab (Kubernetes names)
    drivers:
      allow: ["mycompany_drivers.*"]   # glob patterns over client class import paths
      unsafe: false                    # true: any client class (trust every exporter)
"""

from __future__ import annotations

from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from jumpstarter.config.env import client_config_path
from jumpstarter.config.meta import ObjectMeta
from jumpstarter.config.yaml import ConfigError, load_yaml

API_VERSION: Final = "jumpstarter.dev/v1alpha1"


class DriversConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allow: list[str] = Field([], description="a list of glob patterns over client class import paths")
    unsafe: bool = Field(False, description="true or false: true allows any client class")


class ClientConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    api_version: Literal["jumpstarter.dev/v1alpha1"] = Field(API_VERSION, alias="apiVersion")
    kind: str = "ClientConfig"
    metadata: ObjectMeta | None = None
    drivers: DriversConfig = DriversConfig()


def load_client_config(path: Path | None = None) -> ClientConfig:
    """The client configuration at `path` (default: `client_config_path()`); defaults if there is none."""
    path = path or client_config_path()
    if not path.exists():
        return ClientConfig()
    located = load_yaml(path)
    if located.data is None:
        return ClientConfig()
    if not isinstance(located.data, dict):
        raise located.error((), "a client configuration is a mapping", "start from the example in the documentation")
    config = located.validate(ClientConfig, located.data)
    if config.kind != "ClientConfig":
        raise located.error(("kind",), f"kind is {config.kind!r}", "use kind: ClientConfig")
    return config


__all__ = ["ClientConfig", "ConfigError", "DriversConfig", "load_client_config"]
