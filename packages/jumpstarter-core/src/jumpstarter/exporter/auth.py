"""Tokens and TLS for an exporter's TCP listener.

A TCP listener is reachable from the network, so by default it needs TLS and a token:
every call must carry ``authorization: Bearer <token>`` (or the original jumpstarter's
``x-jumpstarter-passphrase: <token>``). The token is compared in constant time, and a
wrong or missing one ends the call with UNAUTHENTICATED, whatever its kind (unary,
streaming, byte stream).
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

# The certificate and secret-file code moved to jumpstarter.common.tls (the controller uses
# it too); these names stay importable from here for code written against this module.
from jumpstarter.common.tls import TlsIdentity, default_names, write_secret

__all__ = ["REFUSED", "TlsIdentity", "TokenAuthentication", "default_names", "new_token", "write_secret"]

logger = logging.getLogger(__name__)

REFUSED = "missing or wrong token: this exporter needs its token (jmp shell --token-file FILE, or JMP_TOKEN)"


class TokenAuthentication(grpc.aio.ServerInterceptor):
    """Refuses every call that does not carry the token."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], details: grpc.HandlerCallDetails
    ) -> Any:
        handler = await continuation(details)
        if handler is None or self._accepts(details.invocation_metadata or ()):
            return handler
        logger.warning("refused a call to %s without a valid token", details.method)
        return _refusing(handler)

    def _accepts(self, metadata: Any) -> bool:
        offered = []
        for key, value in metadata:
            if key == "authorization":
                scheme, _, credential = str(value).partition(" ")
                if scheme.lower() == "bearer":
                    offered.append(credential.strip())
            elif key == "x-jumpstarter-passphrase":
                offered.append(str(value))
        # Every offered value is compared, so the time taken does not depend on which matched.
        matches = [hmac.compare_digest(value.encode(), self._token) for value in offered]
        return any(matches)


def _refusing(handler: Any) -> Any:
    """A handler of the same kind as `handler` that ends the call with UNAUTHENTICATED."""

    async def refuse(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, REFUSED)

    kinds = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }
    make = kinds[(handler.request_streaming, handler.response_streaming)]
    return make(
        refuse, request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer
    )


def new_token() -> str:
    return secrets.token_urlsafe(32)
