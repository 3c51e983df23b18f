"""The exporter's channels to its lab: the controller's (TLS, and who it is on every call) and a router's.

The controller knows the exporter by the four metadata keys that the original's peers send
on every `ControllerService` call (the wire protocol's §4.8): its token, its kind, namespace
and name. A router knows only the stream token of one connection. Both trust the CA of the
configuration's ``tls.ca`` (the system's roots when it is empty), and ping an idle
connection every 20 s, which the original's controller and router accept, so that a
controller that vanished without closing its connections is noticed.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import grpc

from jumpstarter.common.channels import identified_channel, identity
from jumpstarter.common.protocol import CHANNEL_OPTIONS

__all__ = ["ControllerAddress", "controller_channel", "router_channel"]

# Pings on idle connections, and how long an answer may take before the connection is broken.
_KEEPALIVE = [
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.ping_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]


@dataclass(frozen=True)
class ControllerAddress:
    """Where the controller is, how to trust it, and who this exporter is to it."""

    endpoint: str
    name: str
    namespace: str | None
    token: str = field(repr=False)
    ca: bytes | None = None
    """PEM certificates to trust; None: the system's roots."""
    options: tuple[tuple[str, str | int], ...] = ()
    """The configuration's ``grpcOptions``, applied after ours."""

    @classmethod
    def from_config(cls, config: Any) -> ControllerAddress:
        """From an `ExporterConfig` with an ``endpoint``; ValueError for what cannot be used."""
        if not config.endpoint or not config.token:
            raise ValueError("an exporter that joins a lab needs endpoint: and token: in its configuration")
        if config.tls.insecure:
            raise ValueError(
                "tls.insecure is not supported: this exporter checks the controller's certificate; give the "
                "controller's CA in tls.ca (jmp admin create exporter writes it)"
            )
        ca = base64.b64decode(config.tls.ca) if config.tls.ca else None
        return cls(
            endpoint=config.endpoint,
            name=config.metadata.name,
            namespace=config.metadata.namespace,
            token=config.token,
            ca=ca,
            options=tuple(config.grpc_options.items()),
        )

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return identity(self.token, "Exporter", self.namespace, self.name)

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(root_certificates=self.ca)


def controller_channel(address: ControllerAddress) -> grpc.aio.Channel:
    """A channel to the controller whose every call carries this exporter's identity."""
    options = [*CHANNEL_OPTIONS, *_KEEPALIVE, *address.options]
    return identified_channel(address.endpoint, address.metadata(), ca=address.ca, options=options)


def router_channel(endpoint: str, address: ControllerAddress) -> grpc.aio.Channel:
    """A channel to a router the controller named (it shows a certificate of the same CA)."""
    return grpc.aio.secure_channel(endpoint, address.credentials(), options=[*CHANNEL_OPTIONS, *_KEEPALIVE])
