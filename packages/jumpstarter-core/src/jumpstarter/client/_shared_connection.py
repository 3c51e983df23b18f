"""One connection to a leased exporter, shared by every client of a lease's socket.

Every new connection through the router needs a `Dial` from the controller. A lease's
clients (each `j` that a `jmp shell` command runs is a process of its own, with its own
connection) would then depend on the controller for every call, and a controller that is
away, restarting or failing over would break them although the router and the exporter are
fine. So the lease's socket is served by a gRPC server that forwards every call, as bytes,
with its metadata, deadline, status and trailers, over one channel to the exporter: that
channel's connection is dialled once and kept (no idle timeout), and dialled again only when
it breaks (the exporter restarted, the router went away).

The clients' keepalive pings reach this server, not the exporter: the shared connection pings
the exporter itself, as a client does (every KEEPALIVE_SECONDS once the exporter's report,
seen passing by, says it takes them; the original's exporter takes none on its socket), so
that a path that breaks fails the calls on it within seconds instead of leaving them hanging.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import grpc
from anyio.abc import TaskGroup

from jumpstarter.common.protocol import CHANNEL_OPTIONS, ERROR_CLASS_METADATA_KEY, KEEPALIVE_SECONDS, SERVER_OPTIONS
from jumpstarter.common.wire import end_call, keepalive_supported
from jumpstarter.v1 import jumpstarter_pb2

__all__ = ["shared_connection"]

logger = logging.getLogger(__name__)

# The shared connection is never closed for being idle (gRPC's default closes it after 30 min),
# and a broken one is dialled again quickly: the controller may have come back meanwhile. (Not
# grpc.min_reconnect_backoff_ms: despite its name, it is the least time gRPC gives a connection
# attempt, the exporter's first HTTP/2 frame included; gRPC's 20 s suit a path through the router.)
_UPSTREAM_OPTIONS: list[tuple[str, Any]] = [
    *CHANNEL_OPTIONS,
    ("grpc.client_idle_timeout_ms", 2**31 - 1),
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
    # A channel of its own subchannels: one that replaces a broken channel must not inherit its backoff.
    ("grpc.use_local_subchannel_pool", 1),
]
_FAST_KEEPALIVE: list[tuple[str, Any]] = [
    *_UPSTREAM_OPTIONS,
    ("grpc.keepalive_time_ms", KEEPALIVE_SECONDS * 1000),
    ("grpc.keepalive_timeout_ms", KEEPALIVE_SECONDS * 1000),
    ("grpc.http2.ping_timeout_ms", KEEPALIVE_SECONDS * 1000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]
_REPORT = "/jumpstarter.v1.ExporterService/GetReport"
# On the way out, how long the calls in progress may take to end (a client that left ended its calls).
_STOP_GRACE_SECONDS = 0.5
# On the way out, how long replaced channels may take to close (their calls are cancelled by then).
_CLOSE_WAIT_SECONDS = 5.0
# How long calls begun on a channel may go on once another replaces it (pinging, or not broken).
_REPLACED_GRACE_SECONDS = 600.0
# Metadata that belongs to one HTTP/2 hop, not to the call.
_HOP_KEYS = ("user-agent", "te", "content-type", "grpc-accept-encoding", "grpc-encoding")


@asynccontextmanager
async def shared_connection(upstream: str, path: str) -> AsyncIterator[str]:
    """Serve on the Unix socket `path` every call, forwarded over one channel to `upstream` (a gRPC target)."""
    async with anyio.create_task_group() as tasks:
        forward = _Forward(upstream, tasks)
        server = grpc.aio.server(handlers=[forward], options=SERVER_OPTIONS)
        server.add_insecure_port(f"unix:{path}")
        await server.start()
        try:
            yield path
        finally:
            with anyio.CancelScope(shield=True):
                await server.stop(grace=_STOP_GRACE_SECONDS)
                await forward.close()
            tasks.cancel_scope.cancel()


def _call_metadata(metadata: Any) -> list[tuple[str, Any]]:
    return [(key, value) for key, value in metadata or () if not key.startswith(":") and key not in _HOP_KEYS]


def _path_broke(code: grpc.StatusCode, trailing: Any) -> bool:
    """Whether gRPC itself failed the call for the connection (an HTTP/2 stream cut mid-frame is INTERNAL).

    An error a driver raised is marked by our exporter (ERROR_CLASS_METADATA_KEY): a driver's
    ConnectionError travels as UNAVAILABLE, its OSError as INTERNAL, and neither is the path.
    Unmarked, INTERNAL is gRPC's own: our exporter marks every INTERNAL it sends, and the
    original 0.9.0 exporter sends none (its drivers' errors are UNIMPLEMENTED, INVALID_ARGUMENT,
    DEADLINE_EXCEEDED or UNKNOWN). Unmarked UNAVAILABLE is the path's too: our exporter's own
    refusals are other codes (drivers that cannot start: FAILED_PRECONDITION).
    """
    if any(key == ERROR_CLASS_METADATA_KEY for key, _ in trailing or ()):
        return False
    return code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL)


def _short(details: str) -> str:
    """gRPC's connection error without the path of the tunnel's private socket."""
    return details.split("; last error: ")[-1].split(": ")[-1] if "last error" in details else details


class _Forward(grpc.GenericRpcHandler):
    """Every method, whatever its kind, as a bidirectional stream of raw messages (HTTP/2 does not tell them apart)."""

    def __init__(self, upstream: str, tasks: TaskGroup) -> None:
        self._upstream = upstream
        self._tasks = tasks
        self._channel = grpc.aio.insecure_channel(upstream, options=_UPSTREAM_OPTIONS)
        self._pinging = False
        self._closing: list[anyio.Event] = []  # set once a replaced channel is closed

    async def close(self) -> None:
        """Close the channels (the server stopped first: no call is left on them)."""
        # A replaced channel closes in a task of its own; closing it again meanwhile would break gRPC's
        # bookkeeping of that close (an InvalidStateError in a callback): wait for those closes instead.
        with anyio.move_on_after(_CLOSE_WAIT_SECONDS):
            for closed in self._closing:
                await closed.wait()
        await self._channel.close()

    def _replace(self, options: list[tuple[str, Any]], grace: float | None) -> None:
        replaced, self._channel = self._channel, grpc.aio.insecure_channel(self._upstream, options=options)
        closed = anyio.Event()
        self._closing.append(closed)

        async def close() -> None:
            await replaced.close(grace)
            closed.set()

        self._tasks.start_soon(close)

    def _learn(self, report: bytes) -> None:
        """Ping the exporter from now on if its report says it takes pings (the calls begun go on meanwhile)."""
        try:
            capabilities = jumpstarter_pb2.GetReportResponse.FromString(report).capabilities
        except Exception:  # not ours to judge: the client gets the report as it came
            return
        if self._pinging or not keepalive_supported(capabilities):
            return
        self._pinging = True
        self._replace(_FAST_KEEPALIVE, _REPLACED_GRACE_SECONDS)

    def _connected(self) -> grpc.aio.Channel:
        """The channel for a new call: a broken one is replaced, so that the call dials at once.

        (gRPC would fail calls on it until its backoff lets it try again; one dial per call that
        finds it broken is what a client without a shared connection would do too.)"""
        if self._channel.get_state() == grpc.ChannelConnectivity.TRANSIENT_FAILURE:
            self._replace(_FAST_KEEPALIVE if self._pinging else _UPSTREAM_OPTIONS, None)  # its calls fail anyway
        return self._channel

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler[bytes, bytes]:
        method: str = handler_call_details.method
        stub: grpc.aio.StreamStreamMultiCallable[bytes, bytes] = self._connected().stream_stream(method)
        learn = method == _REPORT and not self._pinging

        async def forward(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            call = stub(
                requests,
                metadata=grpc.aio.Metadata(*_call_metadata(context.invocation_metadata())),
                timeout=context.time_remaining(),
            )
            try:
                await context.send_initial_metadata(tuple(_call_metadata(await call.initial_metadata())))
                async for response in call:
                    if learn:
                        self._learn(response)
                    yield response
                context.set_trailing_metadata(tuple(_call_metadata(await call.trailing_metadata())))
            except grpc.aio.AioRpcError as error:
                code, details = error.code(), error.details() or error.code().name
                if _path_broke(code, error.trailing_metadata()):  # say which path, and that it is the path
                    code = grpc.StatusCode.UNAVAILABLE
                    details = f"the leased exporter cannot be reached through the router ({_short(details)})"
                end_call(context, code, details, _call_metadata(error.trailing_metadata()))
            finally:
                if not call.done():  # the client left first: the exporter stops too
                    call.cancel()

        return grpc.stream_stream_rpc_method_handler(forward)
