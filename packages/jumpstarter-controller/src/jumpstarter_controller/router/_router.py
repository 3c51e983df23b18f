"""The router's pairing and relay: two `RouterService.Stream` callers with one stream id, joined.

Each caller shows a stream token (`authorization: Bearer <jwt>`, `tokens.verify_stream_token`).
The first caller of a stream id waits (at most `wait_timeout`) for the second; then each call's
handler copies what its caller sends to the other call, frame by frame. A `StreamRequest` and a
`StreamResponse` have the same fields, so the frames go through as bytes, never parsed: payload
and frame type unchanged, unknown fields too.

- Backpressure: a frame is read from one side only once the previous one was accepted by the
  other side's HTTP/2 flow control; nothing is buffered beyond gRPC's windows.
- Half-close: a caller's end of requests (gRPC half-close) ends its direction only; the other
  direction goes on, and both calls end OK once both directions have. The end of data is also
  signalled in-band by a GOAWAY frame, relayed like any other. A cancelled call ends its reads
  with EOF too; gRPC then cancels its handler, and that (no timing) is what breaks the stream.
  grpc.aio gives no earlier sign: a caller that cancels without GOAWAY at the very moment the
  other direction had ended is taken for one that half-closed.
- A broken side (its caller vanished, its call failed) ends the other at once with UNAVAILABLE.
- A stream id pairs exactly two callers: a third, or one arriving after its first gave up,
  is refused. The record of a stream id lasts as long as its token is valid.
- Refusals are UNAUTHENTICATED with the reason (never the token), logged at most once a
  minute plus a count (`jumpstarter.exporter.guard.RefusalLog`), and read none of the call.
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import grpc
from google.protobuf.message import DecodeError

from jumpstarter.exporter.guard import RefusalLog
from jumpstarter.v1.router_pb2 import FRAME_TYPE_GOAWAY, StreamRequest
from jumpstarter_controller.router.tokens import LEEWAY, StreamClaims, StreamTokenError, verify_stream_token

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

__all__ = ["DEFAULT_WAIT_SECONDS", "ROUTER_SERVICE", "Router", "add_router_service"]

logger = logging.getLogger(__name__)

ROUTER_SERVICE = "jumpstarter.v1.RouterService"
DEFAULT_WAIT_SECONDS = 60.0
# How often the record of a stream still relaying after its token expired is looked at again.
_RECHECK_SECONDS = 60.0
# Frames this small are parsed to find GOAWAY (which carries no payload); data frames never are.
_SMALL_FRAME = 8

_NO_TOKEN = (
    "the router needs a stream token: 'authorization: Bearer <token>' from the controller's Dial or Listen answer"
)


@dataclass(eq=False)
class _Half:
    context: grpc.aio.ServicerContext[bytes, bytes]
    peer: str


@dataclass(eq=False)
class _Pair:
    first: _Half
    expires: float  # time.time() after which the stream's token is refused anyway
    second: _Half | None = None
    joined: anyio.Event = field(default_factory=anyio.Event)
    finished: anyio.Event = field(default_factory=anyio.Event)
    ended: set[_Half] = field(default_factory=set)  # sources whose end of requests was read, all relayed
    half_closed: set[_Half] = field(default_factory=set)  # of those, the ones that did not cancel their call
    said_goaway: set[_Half] = field(default_factory=set)  # sources that sent their end of data (GOAWAY)
    abandoned: bool = False  # the first caller left before a second came
    counted_out: bool = False  # no longer among the router's active pairs
    broken_by: _Half | None = None
    reason: str = ""

    def other(self, half: _Half) -> _Half | None:
        return self.second if half is self.first else self.first

    def direction_done(self, source: _Half) -> None:
        self.half_closed.add(source)
        if len(self.half_closed) == 2:
            self.finished.set()

    def break_(self, by: _Half, reason: str) -> None:
        """`by` went away: the stream ends, broken unless nothing was left to pass either way."""
        if self.finished.is_set():
            return
        other = self.other(by)
        if (by in self.half_closed or by in self.said_goaway) and other in self.ended:
            # Everything both sent was relayed (the other's GOAWAY or end included): a caller that
            # leaves without waiting for its call's status (the original's do) loses nothing.
            self.finished.set()
            return
        self.broken_by, self.reason = by, reason
        self.finished.set()


class Router:
    """Pairs `RouterService.Stream` calls by their stream token's subject and relays between them.

    `verify_key` is the controller's public signing key. `describe_peer` names a caller in logs
    (`ConnectionGate.describe_peer` behind a gate). The counters are for metrics and for the
    controller's choice of the least loaded router (`load`).
    """

    def __init__(
        self,
        verify_key: EllipticCurvePublicKey,
        *,
        wait_timeout: float = DEFAULT_WAIT_SECONDS,
        describe_peer: Callable[[str], str] = str,
        refusals: RefusalLog | None = None,
    ) -> None:
        self._verify_key = verify_key
        self.wait_timeout = wait_timeout
        self.describe_peer = describe_peer
        self._refusals = refusals
        self._streams: dict[str, _Pair] = {}
        self._expiries: list[tuple[float, str]] = []
        self.active_pairs = 0
        self.waiting_halves = 0
        self.total_pairs = 0
        self.refused = 0
        self.bytes_from_first = 0  # from the caller that waited to the one that joined it
        self.bytes_from_second = 0

    @property
    def load(self) -> int:
        """Streams in use or waiting: what the least loaded router has fewest of."""
        return self.active_pairs + self.waiting_halves

    def close(self) -> None:
        """Log the refusals counted and not yet logged."""
        if self._refusals is not None:
            self._refusals.close()

    # -- the handler of RouterService.Stream ---------------------------------------------------

    async def stream(self, requests: Any, context: grpc.aio.ServicerContext[bytes, bytes]) -> None:
        half = _Half(context, self.describe_peer(context.peer()))
        claims = self._authenticate(context.invocation_metadata() or (), half)
        if claims is None:
            return
        self._forget_expired()
        pair = self._streams.get(claims.stream_id)
        if pair is None:
            pair = _Pair(first=half, expires=claims.expires.timestamp() + LEEWAY.total_seconds())
            self._streams[claims.stream_id] = pair
            heapq.heappush(self._expiries, (pair.expires, claims.stream_id))
            if not await self._wait_for_peer(pair, half):
                return
        elif pair.abandoned:
            return self._refuse(
                half,
                grpc.StatusCode.UNAVAILABLE,
                "the other end of this stream stopped waiting before this one came: dial the exporter again",
            )
        elif pair.second is not None:
            return self._refuse(
                half,
                grpc.StatusCode.UNAUTHENTICATED,
                "this stream token was already used by both ends of its stream: dial the exporter again for a new one",
            )
        else:
            pair.second = half
            self.waiting_halves -= 1
            self.active_pairs += 1
            self.total_pairs += 1
            pair.joined.set()
        await self._relay(pair, half)

    def _authenticate(self, metadata: Any, half: _Half) -> StreamClaims | None:
        offered = [value for key, value in metadata if key == "authorization"]  # (key, value) pairs
        if len(offered) != 1:
            message = _NO_TOKEN if not offered else "the router takes exactly one authorization header"
            self._refuse(half, grpc.StatusCode.UNAUTHENTICATED, message)
            return None
        scheme, _, token = str(offered[0]).partition(" ")
        if scheme.lower() != "bearer":
            self._refuse(half, grpc.StatusCode.UNAUTHENTICATED, _NO_TOKEN)
            return None
        try:
            return verify_stream_token(self._verify_key, token.strip())
        except StreamTokenError as error:
            self._refuse(half, grpc.StatusCode.UNAUTHENTICATED, str(error))
            return None

    def _refuse(self, half: _Half, code: grpc.StatusCode, message: str) -> None:
        # set_code rather than abort: an aborted call's exception keeps this frame alive in a
        # reference cycle (jumpstarter.exporter.guard); and nothing of the call is read.
        self.refused += 1
        if self._refusals is None:
            self._refusals = RefusalLog()
        self._refusals.note(f"refused a stream from {half.peer}: {message}")
        half.context.set_code(code)
        half.context.set_details(message)

    def _forget_expired(self) -> None:
        now = time.time()
        while self._expiries and self._expiries[0][0] < now:
            _, stream_id = heapq.heappop(self._expiries)
            pair = self._streams.get(stream_id)
            if pair is None:
                continue
            if pair.finished.is_set() or pair.abandoned:
                del self._streams[stream_id]
            else:  # still relaying: looked at again later (its token is refused by now anyway)
                heapq.heappush(self._expiries, (now + _RECHECK_SECONDS, stream_id))

    async def _wait_for_peer(self, pair: _Pair, half: _Half) -> bool:
        """Whether the second caller came; if not, the first's call ends with a status saying why."""
        self.waiting_halves += 1
        try:
            with anyio.move_on_after(self.wait_timeout):
                await pair.joined.wait()
        finally:
            if not pair.joined.is_set():
                pair.abandoned = True  # also when the caller left (its call cancelled)
                self.waiting_halves -= 1
        if pair.joined.is_set():
            return True
        message = f"the other end of the stream did not connect within {self.wait_timeout:g} s: dial the exporter again"
        half.context.set_code(grpc.StatusCode.DEADLINE_EXCEEDED)
        half.context.set_details(message)
        logger.info("dropped a stream from %s: no peer within %g s", half.peer, self.wait_timeout)
        return False

    async def _relay(self, pair: _Pair, half: _Half) -> None:
        peer = pair.other(half)
        assert peer is not None
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._pump, pair, half, peer)
                await pair.finished.wait()
                tasks.cancel_scope.cancel()
        except anyio.get_cancelled_exc_class():
            # gRPC cancels the handler of a call its caller cancelled (or lost): the explicit signal
            # that tells a vanished caller from one that half-closed (both end its reads with EOF).
            pair.break_(half, "the other end of the stream went away (it cancelled its call)")
            raise
        finally:
            # This call is over (or cancelled: its caller went away): the other one must end too.
            pair.break_(half, "the other end of the stream went away")
            if not pair.counted_out:
                pair.counted_out = True
                self.active_pairs -= 1
        if pair.broken_by is not None and pair.broken_by is not half:
            half.context.set_code(grpc.StatusCode.UNAVAILABLE)
            half.context.set_details(pair.reason)

    async def _pump(self, pair: _Pair, source: _Half, sink: _Half) -> None:
        """Copy the frames `source` sends to `sink`, until `source` half-closes."""
        from_first = source is pair.first
        while True:
            try:
                frame: object = await source.context.read()
            except Exception as error:  # its call broke: the other end is told
                return pair.break_(source, f"the other end of the stream went away ({_describe(error)})")
            if not isinstance(frame, bytes):  # grpc.aio.EOF: its caller half-closed, or cancelled the call
                # Taken as a half-close at once. A cancellation is told apart by gRPC's own signal:
                # it cancels the handler of a cancelled call (see `_relay`), which breaks the stream
                # unless everything both sides sent was relayed already.
                pair.ended.add(source)
                return pair.direction_done(source)
            if len(frame) <= _SMALL_FRAME and _is_goaway(frame):
                # Its end of data: once relayed, only its call's end follows. Noted before the write,
                # as the peer may leave the moment it reads it.
                pair.ended.add(source)
                pair.said_goaway.add(source)
            try:
                await sink.context.write(frame)
            except Exception as error:
                return pair.break_(sink, f"the other end of the stream went away ({_describe(error)})")
            if from_first:
                self.bytes_from_first += len(frame)
            else:
                self.bytes_from_second += len(frame)


def _is_goaway(frame: bytes) -> bool:
    """Whether `frame` (a serialized StreamRequest) is a GOAWAY frame: the sender's end of data."""
    try:
        return StreamRequest.FromString(frame).frame_type == FRAME_TYPE_GOAWAY
    except DecodeError:
        return False


def _describe(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def add_router_service(server: grpc.aio.Server, router: Router) -> None:
    """Serve `router` as `jumpstarter.v1.RouterService` on `server` (the controller's own port, or a router's)."""
    # No (de)serializers: frames are relayed as the bytes they came as.
    handler: grpc.RpcMethodHandler[bytes, bytes] = grpc.stream_stream_rpc_method_handler(router.stream)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(ROUTER_SERVICE, {"Stream": handler}),))
