"""Where an exporter session listens, and how a client authenticates to it.

An address is a Unix socket path (plaintext gRPC on a private socket) or ``host:port``
(TCP: TLS by default, with a token), as in ``JUMPSTARTER_HOST``: it is TCP when the text
after the last ``:`` is a port number.
"""

from __future__ import annotations

import collections
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from jumpstarter.common.protocol import CHANNEL_OPTIONS
from jumpstarter.common.tls import check_pem_certificates
from jumpstarter.config.env import (
    JMP_GRPC_INSECURE,
    JMP_GRPC_PASSPHRASE,
    JMP_TLS_CA,
    JMP_TLS_SERVER_NAME,
    JMP_TOKEN,
    JUMPSTARTER_HOST,
)

# TCP channels ping an idle connection so that a vanished exporter is noticed (the exporter
# allows pings every 10 s, like the original's).
_TCP_OPTIONS = [
    *CHANNEL_OPTIONS,
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
]


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

    def __post_init__(self) -> None:
        """ValueError, saying what to give, for a `tls_ca` that is not PEM or options that contradict."""
        if self.tls_ca is not None:
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
        tls_ca = Path(ca_path).read_bytes() if ca_path else None
        token = os.environ.get(JMP_TOKEN) or os.environ.get(JMP_GRPC_PASSPHRASE) or None
        insecure = any(os.environ.get(name) == "1" for name in (JMP_GRPC_INSECURE, "JUMPSTARTER_GRPC_INSECURE"))
        server_name = os.environ.get(JMP_TLS_SERVER_NAME) or None
        if tls_ca is not None:
            try:
                check_pem_certificates(tls_ca, f"{JMP_TLS_CA} {ca_path}")
            except ValueError as error:
                raise LookupError(str(error)) from None
        if insecure:  # the original's clients set it alone; TLS settings left over do not apply
            tls_ca = server_name = None
        return cls(address=address, tls_ca=tls_ca, token=token, insecure=insecure, tls_server_name=server_name)

    @property
    def is_tcp(self) -> bool:
        return is_tcp_address(self.address)

    def channels(self) -> tuple[grpc.aio.Channel, grpc.Channel]:
        """A new asyncio channel and blocking channel to the endpoint (create on the event loop)."""
        if not self.is_tcp:
            target = f"unix://{self.address}"
            # Local credentials: no TLS on a Unix socket, but call metadata may still be sent.
            credentials = grpc.local_channel_credentials(grpc.LocalConnectionType.UDS)
            return (
                grpc.aio.secure_channel(target, credentials, options=CHANNEL_OPTIONS),
                grpc.secure_channel(target, credentials, options=CHANNEL_OPTIONS),
            )
        metadata = self._metadata()
        if self.insecure:
            aio_channel = grpc.aio.insecure_channel(
                self.address, options=_TCP_OPTIONS, interceptors=_aio_interceptors(metadata)
            )
            sync_channel = grpc.insecure_channel(self.address, options=_TCP_OPTIONS)
        else:
            credentials = grpc.ssl_channel_credentials(root_certificates=self.tls_ca)
            options: list[tuple[str, str | int]] = list(_TCP_OPTIONS)
            if self.tls_server_name:
                options = [*options, ("grpc.ssl_target_name_override", self.tls_server_name)]
            aio_channel = grpc.aio.secure_channel(
                self.address, credentials, options=options, interceptors=_aio_interceptors(metadata)
            )
            sync_channel = grpc.secure_channel(self.address, credentials, options=options)
        if metadata:
            sync_channel = grpc.intercept_channel(sync_channel, _SyncMetadata(metadata))
        return aio_channel, sync_channel

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
