"""Refusing strangers cheaply: the token check, rate-limited refusal logs, the descriptor limit.

A gRPC server that listens on the network (an exporter's TCP listener, the controller)
must refuse a caller without its credential before spending anything on it:

- `TokenAuthentication` refuses a call without the token with a handler that reads none of
  the request (a stranger cannot make the server receive or parse a 128 MiB body) and that
  does not raise (gRPC keeps the exception of an aborted call, and with it the handler's
  frame, in a reference cycle until the cyclic collector runs).
- `RefusalLog` logs the first refusal at once and then a count per minute, so that a flood
  of refused attempts is one line a minute in the server's log. Its records go to the
  logger ``jumpstarter.guard``, which an exporter never relays to its clients.
- `raise_descriptor_limit` raises the soft limit of open files to the hard one at start:
  the usual 1,024 is soon reached by idle connections.

`jumpstarter.exporter.gate.ConnectionGate` limits the connections per peer in front of
such a server; `handshake_options` bounds the time a connection may take to say who it is.

    gate = ConnectionGate(limits=ConnectionLimits())
    server = grpc.aio.server(
        options=[*handshake_options(), ...],
        interceptors=[TokenAuthentication(token, describe_peer=gate.describe_peer)],
    )
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import resource
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

__all__ = [
    "GUARD_LOGGER_NAME",
    "HANDSHAKE_SECONDS",
    "REFUSED",
    "RefusalLog",
    "TokenAuthentication",
    "handshake_options",
    "raise_descriptor_limit",
    "refusing_handler",
]

GUARD_LOGGER_NAME = "jumpstarter.guard"
"""The logger of refusals: for the server's own log, never relayed to clients (whose peers they name)."""

logger = logging.getLogger(GUARD_LOGGER_NAME)

REFUSED = "missing or wrong token: this exporter needs its token (jmp shell --token-file FILE, or JMP_TOKEN)"

HANDSHAKE_SECONDS = 10.0
"""How long a new connection may take to complete its TLS and HTTP/2 handshakes (gRPC's default: 120 s)."""

# The soft limit of open files is raised this high at most (the hard limit may be "unlimited").
_DESCRIPTOR_TARGET = 1 << 16


def handshake_options(seconds: float = HANDSHAKE_SECONDS) -> list[tuple[str, int]]:
    """gRPC server options that close a connection whose handshakes take longer than `seconds`."""
    return [("grpc.server_handshake_timeout_ms", int(seconds * 1000))]


def raise_descriptor_limit(target: int = _DESCRIPTOR_TARGET) -> int:
    """Raise the soft limit of open files up to the hard limit (at most `target`); return it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = target if hard == resource.RLIM_INFINITY else min(hard, target)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as error:  # a container may forbid it
            logger.warning("cannot raise the limit of open files from %d to %d: %s", soft, wanted, error)
            return soft
        return wanted
    return soft


def refusing_handler(
    code: grpc.StatusCode, details: str, on_refusal: Callable[[str], None]
) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler that answers `code` with `details` and reads nothing of the call, whatever its kind.

    A streaming handler with no deserializer: gRPC reads a request before calling a handler
    that takes one, and this one takes none. `on_refusal` gets gRPC's name of the peer (for the log).
    """

    async def refuse(requests: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        on_refusal(context.peer())
        context.set_code(code)
        context.set_details(details)

    return grpc.stream_stream_rpc_method_handler(refuse)


class RefusalLog:
    """Logs refusals of one kind: the first at once, then at most one line per `interval` with
    how many more there were and the last of them. Use on the event loop."""

    def __init__(self, interval: float = 60.0, log: logging.Logger = logger) -> None:
        self._interval = interval
        self._log = log
        self._quiet_until = 0.0
        self._suppressed = 0
        self._last = ""
        self._flush: asyncio.TimerHandle | None = None

    def note(self, message: str) -> None:
        now = time.monotonic()
        if self._suppressed == 0 and now >= self._quiet_until:
            self._log.warning("%s", message)
            self._quiet_until = now + self._interval
            return
        self._suppressed += 1
        self._last = message
        if self._flush is None:
            self._flush = asyncio.get_running_loop().call_later(self._quiet_until - now, self._flush_now)

    def _flush_now(self) -> None:
        self._flush = None
        if self._suppressed:
            self._log.warning(
                "%d more refusals in the last %.0f s; the last: %s", self._suppressed, self._interval, self._last
            )
            self._suppressed = 0
            self._quiet_until = time.monotonic() + self._interval

    def close(self) -> None:
        """Log what is counted and not yet said."""
        if self._flush is not None:
            self._flush.cancel()
        self._flush_now()


class TokenAuthentication(grpc.aio.ServerInterceptor):
    """Refuses every call that does not carry the token, with UNAUTHENTICATED, reading nothing of it.

    The token is taken as ``authorization: Bearer TOKEN`` or as the original jumpstarter's
    ``x-jumpstarter-passphrase: TOKEN``, and compared in constant time. `describe_peer`
    turns gRPC's name of a peer into the one the log shows (`ConnectionGate.describe_peer`).
    """

    def __init__(
        self,
        token: str,
        *,
        describe_peer: Callable[[str], str] = str,
        refusals: RefusalLog | None = None,
        message: str = REFUSED,
    ) -> None:
        self._token = token.encode()
        self._describe_peer = describe_peer
        self._refusals = refusals or RefusalLog()
        self._message = message

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], details: grpc.HandlerCallDetails
    ) -> Any:
        if self._accepts(details.invocation_metadata or ()):
            return await continuation(details)
        return self._refusing(details.method)

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

    def _refusing(self, method: str) -> grpc.RpcMethodHandler[Any, Any]:
        def note(peer: str) -> None:
            self._refusals.note(f"refused a call of {method} from {self._describe_peer(peer)}: no valid token")

        return refusing_handler(grpc.StatusCode.UNAUTHENTICATED, self._message, note)

    def close(self) -> None:
        self._refusals.close()
