"""TLS channels to a lab's controller whose every call says who calls (the wire protocol's §4.8).

The original's peers send four metadata keys on every call to the controller: the bearer
token, their kind (``Client`` or ``Exporter``), namespace and name. An exporter, a client and
the controller's test peers build their channels here.

    channel = identified_channel("lab:8082", identity("TOKEN", "Exporter", "default", "board1"), ca=pem)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

__all__ = ["identified_channel", "identity", "metadata_interceptors"]

Metadata = tuple[tuple[str, str], ...]


def identity(token: str, kind: str, namespace: str | None, name: str) -> Metadata:
    """The four keys (the namespace left out when there is none)."""
    keys = [("authorization", f"Bearer {token}"), ("jumpstarter-kind", kind)]
    if namespace:
        keys.append(("jumpstarter-namespace", namespace))
    keys.append(("jumpstarter-name", name))
    return tuple(keys)


def identified_channel(
    endpoint: str, metadata: Metadata, *, ca: bytes | None, options: Sequence[tuple[str, Any]] = ()
) -> grpc.aio.Channel:
    """A TLS channel to `endpoint` trusting `ca` (PEM; None: the system's roots), `metadata` on every call."""
    credentials = grpc.ssl_channel_credentials(root_certificates=ca)
    return grpc.aio.secure_channel(endpoint, credentials, options=list(options),
                                   interceptors=metadata_interceptors(metadata))  # fmt: skip


def metadata_interceptors(metadata: Metadata) -> list[grpc.aio.ClientInterceptor]:
    """Interceptors adding `metadata` to calls of every kind.

    Interceptors rather than call credentials: gRPC runs the latter on threads of its own."""
    return [_UnaryUnary(metadata), _UnaryStream(metadata), _StreamUnary(metadata), _StreamStream(metadata)]


class _WithMetadata:
    def __init__(self, metadata: Metadata) -> None:
        self._metadata = metadata

    def _details(self, details: Any) -> Any:
        return details._replace(metadata=grpc.aio.Metadata(*self._metadata, *(details.metadata or ())))


class _UnaryUnary(_WithMetadata, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _UnaryStream(_WithMetadata, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


class _StreamUnary(_WithMetadata, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)


class _StreamStream(_WithMetadata, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details), requests)
