"""Where an exporter session listens, and how a client authenticates to it.

An address is a Unix socket path (plaintext gRPC on a private socket) or ``host:port``
(TCP: TLS by default, with a token), as in ``JUMPSTARTER_HOST``: it is TCP when the text
after the last ``:`` is a port number.
"""

from __future__ import annotations

import collections
import os
from dataclasses import dataclass, field
from typing import Any

import grpc

from jumpstarter.common.protocol import CHANNEL_OPTIONS, KEEPALIVE_SECONDS
from jumpstarter.config.env import (
    JMP_GRPC_INSECURE,
    JMP_GRPC_PASSPHRASE,
    JMP_HOST_KEEPALIVE,
    JMP_TLS_CA,
    JMP_TLS_SERVER_NAME,
    JMP_TOKEN,
    JUMPSTARTER_HOST,
)


def _keepalive(every: float, answer_within: float) -> list[tuple[str, int]]:
    # Pings on an idle connection too; a ping unanswered in time breaks the connection, and
    # every call on it fails with UNAVAILABLE instead of waiting for ever.
    return [
        ("grpc.keepalive_time_ms", int(every * 1000)),
        ("grpc.keepalive_timeout_ms", int(answer_within * 1000)),
        ("grpc.http2.ping_timeout_ms", int(answer_within * 1000)),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]


# An exporter that advertises the keepalive capability (ours) takes pings every KEEPALIVE_SECONDS.
_FAST_KEEPALIVE = [*CHANNEL_OPTIONS, *_keepalive(KEEPALIVE_SECONDS, KEEPALIVE_SECONDS)]
# Any other exporter: the original takes pings every 20 s on TCP, and none on its Unix sockets.
_TCP_KEEPALIVE = [*CHANNEL_OPTIONS, *_keepalive(20, 10)]


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


def is_tcp_address(address: str) -> bool:
    host, separator, port = address.rpartition(":")
    return bool(separator and host and port.isdigit() and 1 <= int(port) <= 65535)


@dataclass(frozen=True)
class ExporterEndpoint:
    """An exporter session's address and the credentials to reach it."""

    address: str
    tls_ca: bytes | None = None
    """PEM certificates to trust for TLS (an exporter's own certificate works); None: the system's."""
    token: str | None = field(default=None, repr=False)
    insecure: bool = False
    """TCP without TLS: only for exporters started with --insecure-no-auth."""
    tls_server_name: str | None = None
    """The name the exporter's certificate must be valid for, when it is not the host of `address`."""
    keepalive: bool | None = None
    """Whether the exporter takes pings every few seconds, so that a client notices a frozen
    one quickly (ours do). None: the client learns it from the exporter's report."""

    def __post_init__(self) -> None:
        """ValueError, saying what to give, for a `tls_ca` that is not PEM or options that contradict."""
        if self.tls_ca is not None:
            from jumpstarter.common.tls import check_pem_certificates  # only with TLS: a plain j starts without it

            check_pem_certificates(self.tls_ca, "tls_ca")
        if self.insecure and (self.tls_ca is not None or self.tls_server_name):
            raise ValueError(
                "insecure means no TLS: drop the certificate to trust and the TLS server name, or insecure"
            )

    @classmethod
    def from_environment(cls) -> ExporterEndpoint:
        """The endpoint ``jmp shell`` sets for the commands it runs (``JUMPSTARTER_HOST`` and friends).

        LookupError says what is missing or wrong; OSError when ``JMP_TLS_CA`` cannot be read.
        """
        address = os.environ.get(JUMPSTARTER_HOST)
        if not address:
            raise LookupError(
                f"{JUMPSTARTER_HOST} is not set: run this inside `jmp shell`, or set it to an exporter's "
                "socket path or host:port"
            )
        ca_path = os.environ.get(JMP_TLS_CA)
        tls_ca = _read(ca_path) if ca_path else None
        token = os.environ.get(JMP_TOKEN) or os.environ.get(JMP_GRPC_PASSPHRASE) or None
        insecure = any(os.environ.get(name) == "1" for name in (JMP_GRPC_INSECURE, "JUMPSTARTER_GRPC_INSECURE"))
        server_name = os.environ.get(JMP_TLS_SERVER_NAME) or None
        if tls_ca is not None:
            try:
                from jumpstarter.common.tls import check_pem_certificates

                check_pem_certificates(tls_ca, f"{JMP_TLS_CA} {ca_path}")
            except ValueError as error:
                raise LookupError(str(error)) from None
        if insecure:  # the original's clients set it alone; TLS settings left over do not apply
            tls_ca = server_name = None
        keepalive = True if os.environ.get(JMP_HOST_KEEPALIVE) == address else None
        return cls(address=address, tls_ca=tls_ca, token=token, insecure=insecure, tls_server_name=server_name,
                   keepalive=keepalive)  # fmt: skip

    @property
    def is_tcp(self) -> bool:
        return is_tcp_address(self.address)

    def _options(self) -> list[tuple[str, Any]]:
        options: list[tuple[str, Any]] = (
            _FAST_KEEPALIVE if self.keepalive else _TCP_KEEPALIVE if self.is_tcp else CHANNEL_OPTIONS
        )
        if self.tls_server_name and self.is_tcp and not self.insecure:
            options = [*options, ("grpc.ssl_target_name_override", self.tls_server_name)]
        return options

    def aio_channel(self) -> grpc.aio.Channel:
        """A new asyncio channel to the endpoint (create it on the event loop that uses it)."""
        options = self._options()
        if not self.is_tcp:
            # Local credentials: no TLS on a Unix socket, but call metadata may still be sent.
            credentials = grpc.local_channel_credentials(grpc.LocalConnectionType.UDS)
            return grpc.aio.secure_channel(f"unix://{self.address}", credentials, options=options)
        interceptors = _aio_interceptors(self._metadata())
        if self.insecure:
            return grpc.aio.insecure_channel(self.address, options=options, interceptors=interceptors)
        credentials = grpc.ssl_channel_credentials(root_certificates=self.tls_ca)
        return grpc.aio.secure_channel(self.address, credentials, options=options, interceptors=interceptors)

    def sync_channel(self) -> grpc.Channel:
        """A new blocking channel to the endpoint."""
        options = self._options()
        if not self.is_tcp:
            credentials = grpc.local_channel_credentials(grpc.LocalConnectionType.UDS)
            return grpc.secure_channel(f"unix://{self.address}", credentials, options=options)
        if self.insecure:
            channel = grpc.insecure_channel(self.address, options=options)
        else:
            credentials = grpc.ssl_channel_credentials(root_certificates=self.tls_ca)
            channel = grpc.secure_channel(self.address, credentials, options=options)
        metadata = self._metadata()
        return grpc.intercept_channel(channel, _SyncMetadata(metadata)) if metadata else channel

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        if not self.token:
            return ()
        # Both spellings: our exporters take either, the original's standalone exporter the passphrase.
        return (("authorization", f"Bearer {self.token}"), ("x-jumpstarter-passphrase", self.token))


class _CallDetails(
    collections.namedtuple(
        "_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")
    ),
    grpc.ClientCallDetails,
):
    pass


class _SyncMetadata(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Adds the credentials to every call of a blocking channel."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self._metadata = metadata

    def _details(self, details: Any) -> _CallDetails:
        return _CallDetails(
            details.method,
            details.timeout,
            (*(details.metadata or ()), *self._metadata),
            details.credentials,
            details.wait_for_ready,
            getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details), requests)


def _aio_interceptors(metadata: tuple[tuple[str, str], ...]) -> list[Any] | None:
    if not metadata:
        return None

    def details(original: Any) -> grpc.aio.ClientCallDetails:
        return grpc.aio.ClientCallDetails(
            original.method,
            original.timeout,
            grpc.aio.Metadata(*(original.metadata or ()), *metadata),
            original.credentials,
            original.wait_for_ready,
        )

    class UnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):
        async def intercept_unary_unary(self, continuation: Any, call_details: Any, request: Any) -> Any:
            return await continuation(details(call_details), request)

    class UnaryStream(grpc.aio.UnaryStreamClientInterceptor):
        async def intercept_unary_stream(self, continuation: Any, call_details: Any, request: Any) -> Any:
            return await continuation(details(call_details), request)

    class StreamStream(grpc.aio.StreamStreamClientInterceptor):
        async def intercept_stream_stream(self, continuation: Any, call_details: Any, request_iterator: Any) -> Any:
            return await continuation(details(call_details), request_iterator)

    return [UnaryUnary(), UnaryStream(), StreamStream()]
