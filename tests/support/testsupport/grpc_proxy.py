"""A TLS gRPC proxy for tests: forwards every call to a server, without some request metadata.

It stands for a controller that lacks one of our extensions: forwarding our controller's calls
but dropping ``jumpstarter-wait-ready`` makes a controller that answers GetLease at once, as
the original's does. Real sockets and TLS on both sides; the messages pass as bytes.

    async with metadata_dropping_proxy(upstream, ca, cert, key, drop={"jumpstarter-wait-ready"}) as proxy:
        proxy.address, proxy.calls      # "127.0.0.1:PORT", the methods called, in order
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from jumpstarter.common.tls import TlsIdentity

__all__ = ["Proxy", "metadata_dropping_proxy"]


@dataclass
class Proxy:
    address: str
    calls: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    """Each forwarded call: its method and the keys of the metadata it went on with (not the values: tokens)."""

    def count(self, method: str) -> int:
        return sum(1 for called, _ in self.calls if called.endswith(f"/{method}"))


class _Forward(grpc.GenericRpcHandler):
    def __init__(self, channel: grpc.aio.Channel, drop: set[str], proxy: Proxy) -> None:
        self.channel, self.drop, self.proxy = channel, drop, proxy

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method: str = handler_call_details.method  # type: ignore[attr-defined]
        upstream = self.channel.stream_stream(method)

        async def forward(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            kept = tuple((key, value) for key, value in context.invocation_metadata() or () if key not in self.drop)
            self.proxy.calls.append((method, tuple(key for key, _ in kept)))
            remaining = context.time_remaining()
            call = upstream(requests, metadata=kept, timeout=remaining)
            try:
                async for response in call:
                    yield response
            except grpc.aio.AioRpcError as error:
                await context.abort(error.code(), error.details() or "")

        # Every method as a bidirectional stream of bytes: unary calls are streams of one message.
        return grpc.stream_stream_rpc_method_handler(forward)


@asynccontextmanager
async def metadata_dropping_proxy(
    upstream: str, ca: bytes, certificate: Path, key: Path, *, drop: set[str]
) -> AsyncIterator[Proxy]:
    """Serve the proxy on a loopback port (TLS with `certificate`/`key`) in front of `upstream` (trusting `ca`)."""
    async with grpc.aio.secure_channel(upstream, grpc.ssl_channel_credentials(root_certificates=ca)) as channel:
        server = grpc.aio.server()
        port = server.add_secure_port("127.0.0.1:0", TlsIdentity.load(certificate, key).server_credentials())
        proxy = Proxy(f"127.0.0.1:{port}")
        server.add_generic_rpc_handlers((_Forward(channel, drop, proxy),))
        await server.start()
        try:
            yield proxy
        finally:
            await server.stop(None)
