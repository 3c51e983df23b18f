"""Client configurations, in the original jumpstarter's format and places.

``clients/NAME.yaml`` under ``$JMP_CLIENT_CONFIG_HOME`` (else ``$XDG_CONFIG_HOME/jumpstarter``,
else ``~/.config/jumpstarter``), the default one named in ``config.yaml`` beside it
(``jmp config client use NAME``)::

    apiVersion: jumpstarter.dev/v1alpha1
    kind: ClientConfig
    metadata: {namespace: lab-a, name: alice}   # the client's identity in a lab (Kubernetes names)
    endpoint: grpc.lab.example.com:443          # the lab controller
    token: "..."                                # the client's token (the file is 0600)
    tls: {ca: "", insecure: false}              # ca: the base64 of the PEM certificates to trust
    grpcOptions: {}                             # options of the channel to the controller
    drivers:
      allow: ["mycompany_drivers.*"]            # glob patterns over client class import paths
      unsafe: false                             # true: any client class (trust every exporter)

Every key is optional. `resolve_client` chooses the configuration a command uses (``--client``,
``--client-config``, the environment, the default), the one rule of every command.
"""

from __future__ import annotations

from pathlib import Path

from jumpstarter.config._client_schema import ClientConfig, DriversConfig, LeasesConfig, ShellConfig, client_config
from jumpstarter.config._client_store import (
    ResolvedClient,
    client_names,
    client_path,
    clients_dir,
    default_client,
    delete_client,
    lab_problem,
    load_client,
    load_client_file,
    resolve_client,
    save_client,
    use_client,
)
from jumpstarter.config._connection import TLSConfig
from jumpstarter.config.yaml import ConfigError, load_yaml


def load_client_config(path: Path | None = None) -> ClientConfig:
    """The client configuration in the file at `path` (a missing file: the defaults), or, without
    `path`, the one `resolve_client()` chooses. Raises ConfigError."""
    if path is None:
        return resolve_client().config
    return client_config(load_yaml(path)) if path.exists() else ClientConfig()


__all__ = [
    "ClientConfig",
    "ConfigError",
    "DriversConfig",
    "LeasesConfig",
    "ResolvedClient",
    "ShellConfig",
    "TLSConfig",
    "client_names",
    "client_path",
    "clients_dir",
    "default_client",
    "delete_client",
    "lab_problem",
    "load_client",
    "load_client_config",
    "load_client_file",
    "resolve_client",
    "save_client",
    "use_client",
]
