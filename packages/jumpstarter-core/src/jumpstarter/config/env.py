"""Environment variables that jumpstarter reads."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: `j` asks `client_config_given` only, which needs no pathlib
    from pathlib import Path

# Comma-separated glob patterns of client classes a client may import, or UNSAFE for any.
JMP_DRIVERS_ALLOW = "JMP_DRIVERS_ALLOW"
# "true": allow any client class (the same as JMP_DRIVERS_ALLOW=UNSAFE).
JMP_DRIVERS_UNSAFE = "JMP_DRIVERS_UNSAFE"
# A client configuration file to use instead of the default client's.
JMP_CLIENT_CONFIG = "JMP_CLIENT_CONFIG"
# The directory of the client configurations (clients/NAME.yaml) and of the user's config.yaml
# (default: $XDG_CONFIG_HOME/jumpstarter, else ~/.config/jumpstarter), as the original reads it.
JMP_CLIENT_CONFIG_HOME = "JMP_CLIENT_CONFIG_HOME"
# The client configuration of this name (clients/NAME.yaml) instead of the default one.
JMP_CLIENT = "JMP_CLIENT"
# Overrides of the client configuration's fields: endpoint, metadata.namespace and metadata.name
# (JMP_TOKEN, below, overrides its token).
JMP_ENDPOINT = "JMP_ENDPOINT"
JMP_NAMESPACE = "JMP_NAMESPACE"
JMP_NAME = "JMP_NAME"

# The exporter session `jmp shell` gives the commands it runs: a Unix socket path or host:port.
JUMPSTARTER_HOST = "JUMPSTARTER_HOST"
# The token of an exporter's TCP listener (JMP_GRPC_PASSPHRASE, the original's name, works too).
JMP_TOKEN = "JMP_TOKEN"
JMP_GRPC_PASSPHRASE = "JMP_GRPC_PASSPHRASE"
# A PEM file of the certificate(s) to trust for an exporter's TLS listener.
JMP_TLS_CA = "JMP_TLS_CA"
# The name to check an exporter's TLS certificate against, instead of the host of host:port.
JMP_TLS_SERVER_NAME = "JMP_TLS_SERVER_NAME"
# "1": connect to host:port without TLS (an exporter started with --insecure-no-auth).
JMP_GRPC_INSECURE = "JMP_GRPC_INSECURE"
# The JUMPSTARTER_HOST whose exporter takes pings every few seconds (ours), as the shell that
# set it learnt from the exporter's report: its commands connect once instead of asking again.
# Named by address, so that a shell started inside another does not inherit a wrong answer.
JMP_HOST_KEEPALIVE = "JMP_HOST_KEEPALIVE"


_USER_CONFIG = "config.yaml"  # in config_home()


def config_home() -> Path:
    """The directory of the client configurations and of the user's config.yaml (it need not exist)."""
    from pathlib import Path

    return Path(_config_home())


def user_config_path() -> Path:
    """The user's config.yaml, which names the default client (`jmp config client use NAME`)."""
    return config_home() / _USER_CONFIG


def client_config_given() -> bool:
    """Whether a client configuration may apply: without one, `j` need not load pydantic and YAML."""
    explicit = os.environ.get(JMP_CLIENT_CONFIG)
    if explicit:
        return os.path.exists(explicit)
    if any(os.environ.get(name) for name in (JMP_CLIENT, JMP_ENDPOINT, JMP_NAME)):
        return True
    return os.path.exists(os.path.join(_config_home(), _USER_CONFIG))


def _config_home() -> str:
    explicit = os.environ.get(JMP_CLIENT_CONFIG_HOME)
    if explicit:
        return explicit
    return os.path.join(
        os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config"), "jumpstarter"
    )
