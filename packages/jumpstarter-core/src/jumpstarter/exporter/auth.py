"""Tokens and TLS for an exporter's TCP listener.

A TCP listener is reachable from the network, so by default it needs TLS and a token:
every call must carry ``authorization: Bearer <token>`` (or the original jumpstarter's
``x-jumpstarter-passphrase: <token>``). The token is compared in constant time, and a
wrong or missing one ends the call with UNAUTHENTICATED, whatever its kind (unary,
streaming, byte stream), before any of its request is read (`jumpstarter.exporter.guard`).
"""

from __future__ import annotations

import secrets

# The certificate and secret-file code moved to jumpstarter.common.tls (the controller uses
# it too), the token check to jumpstarter.exporter.guard (with the other defences against
# strangers); these names stay importable from here for code written against this module.
from jumpstarter.common.tls import TlsIdentity, default_names, write_secret
from jumpstarter.exporter.guard import REFUSED, TokenAuthentication

__all__ = ["REFUSED", "TlsIdentity", "TokenAuthentication", "default_names", "new_token", "write_secret"]


def new_token() -> str:
    return secrets.token_urlsafe(32)
