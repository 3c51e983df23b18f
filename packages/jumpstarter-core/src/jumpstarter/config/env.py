"""Environment variables that jumpstarter reads."""

from __future__ import annotations

import os
from pathlib import Path

# Comma-separated glob patterns of client classes a client may import, or UNSAFE for any.
JMP_DRIVERS_ALLOW = "JMP_DRIVERS_ALLOW"
# "true": allow any client class (the same as JMP_DRIVERS_ALLOW=UNSAFE).
JMP_DRIVERS_UNSAFE = "JMP_DRIVERS_UNSAFE"
# Where the client configuration lives (default: $XDG_CONFIG_HOME/jumpstarter/client.yaml).
JMP_CLIENT_CONFIG = "JMP_CLIENT_CONFIG"

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


def client_config_path() -> Path:
    """Where the client configuration is read from (it need not exist)."""
    explicit = os.environ.get(JMP_CLIENT_CONFIG)
    if explicit:
        return Path(explicit)
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "jumpstarter" / "client.yaml"
