"""One connection to a leased exporter, shared by every client of a lease's socket.

Every new connection through the router needs a `Dial` from the controller. A lease's
clients (each `j` that a `jmp shell` command runs is a process of its own, with its own
connection) would then depend on the controller for every call, and a controller that is
away, restarting or failing over would break them although the router and the exporter are
fine. So the lease's socket is served by a gRPC server that forwards every call, as bytes,
with its metadata, deadline, status and trailers, over one channel to the exporter: that
channel's connection is dialled once and kept (no idle timeout), and dialled again only when
it breaks (the exporter restarted, the router went away).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc

from jumpstarter.common.protocol import CHANNEL_OPTIONS, SERVER_OPTIONS

__all__ = ["shared_connection"]

logger = logging.getLogger(__name__)

# The shared connection is never closed for being idle (gRPC's default closes it after 30 min),
# and a broken one is dialled again quickly: the controller may have come back meanwhile.
_UPSTREAM_OPTIONS: list[tuple[str, Any]] = [
    *CHANNEL_OPTIONS,
    ("grpc.client_idle_timeout_ms", 2**31 - 1),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
]
# Metadata that belongs to one HTTP/2 hop, not to the call.
_HOP_KEYS = ("user-agent", "te", "content-type", "grpc-accept-encoding", "grpc-encoding")


@asynccontextmanager
async def shared_connection(upstream: str, path: str) -> AsyncIterator[str]:
    """Serve on the Unix socket `path` every call, forwarded over one channel to `upstream` (a gRPC target)."""
    async with grpc.aio.insecure_channel(upstream, options=_UPSTREAM_OPTIONS) as channel:
        server = grpc.aio.server(handlers=[_Forward(channel)], options=SERVER_OPTIONS)
        server.add_insecure_port(f"unix:{path}")
        await server.start()
        try:
            yield path
        finally:
            await server.stop(grace=None)


def _call_metadata(metadata: Any) -> list[tuple[str, Any]]:
    return [(key, value) for key, value in metadata or () if not key.startswith(":") and key not in _HOP_KEYS]


class _Forward(grpc.GenericRpcHandler):
    """Every method, whatever its kind, as a bidirectional stream of raw messages (HTTP/2 does not tell them apart)."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._channel = channel

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[bytes, bytes]:
        method: str = handler_call_details.method
        stub: grpc.aio.StreamStreamMultiCallable[bytes, bytes] = self._channel.stream_stream(method)

        async def forward(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            call = stub(
                requests,
                metadata=grpc.aio.Metadata(*_call_metadata(context.invocation_metadata())),
                timeout=context.time_remaining(),
            )
            try:
                await context.send_initial_metadata(_call_metadata(await call.initial_metadata()))
                async for response in call:
                    yield response
                context.set_trailing_metadata(tuple(_call_metadata(await call.trailing_metadata())))
            except grpc.aio.AioRpcError as error:
                await context.abort(error.code(), error.details() or "", _call_metadata(error.trailing_metadata()))
            finally:
                call.cancel()

        return grpc.stream_stream_rpc_method_handler(forward)
