"""`ConnectionGate`: a TCP listener that admits a bounded number of connections per peer.

gRPC accepts every TCP connection it is offered and has no limit per peer, so a single
host that opens connections and never speaks holds a file descriptor each until the
process has none left, and every client is locked out. The gate listens on the TCP port
in front of a gRPC server that listens on a private Unix socket: it admits at most
`ConnectionLimits.per_peer` connections from one peer (an IPv4 address, or an IPv6 /64)
and `ConnectionLimits.total` in all, closes the others at once, and copies the bytes of
the connections it admits, TLS and all, to the server. The server bounds the time a
connection may take to complete its handshakes (`jumpstarter.exporter.guard.handshake_options`).

Each connection reaches the server from a Unix socket of its own (an abstract name on
Linux), so the server's `context.peer()` still tells connections apart, and
`describe_peer` turns it back into the TCP peer for logs:

    gate = ConnectionGate("0.0.0.0", 7777, backend="/run/private/server.sock")
    server = grpc.aio.server(options=handshake_options())
    server.add_secure_port("unix:///run/private/server.sock", credentials)
    await server.start()
    async with gate:
        ...  # serving on gate.port
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import os
import resource
import secrets
import socket
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio

from jumpstarter.exporter.guard import RefusalLog

__all__ = ["ConnectionGate", "ConnectionLimits"]

# Descriptors kept for everything else (files, drivers, gRPC's own), when `total` is derived from the limit.
_RESERVED_DESCRIPTORS = 128
# A gated connection costs three descriptors: the client's, the gate's to the server, the server's.
_DESCRIPTORS_PER_CONNECTION = 3


@dataclass(frozen=True)
class ConnectionLimits:
    """How many connections a gate admits: from one peer, and in all (None: what the limit
    of open files allows, when the gate starts)."""

    per_peer: int = 64
    total: int | None = None


def peer_key(host: str) -> str:
    """What the limit per peer counts by: the address, or the /64 network of an IPv6 address
    (one host often has a whole /64)."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class _Pipe(asyncio.Protocol):
    """One side of a gated connection: what it receives is written to the other side."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.other: _Pipe | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.write(data)

    def eof_received(self) -> bool:
        # HTTP/2 never half-closes: an end from one side is the end of the connection (and a
        # client that closed must free its place at once).
        other = self.other.transport if self.other is not None else None
        if other is not None and not other.is_closing():
            other.close()  # after what is buffered for it
        return False

    # The other side cannot take more: stop reading this side until it can.
    def pause_writing(self) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.other is not None and self.other.transport is not None:
            self.other.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        other = self.other.transport if self.other is not None else None
        if other is not None and not other.is_closing():
            # A clean end is passed on cleanly (what was sent still arrives); a broken one breaks the other.
            other.abort() if exc is not None else other.close()


def _no_delay(transport: asyncio.BaseTransport) -> None:
    """Send what the server writes at once (no Nagle).

    asyncio turns Nagle's algorithm off only on sockets whose protocol number is IPPROTO_TCP,
    and those of `socket.create_server` (hence the connections accepted on them) say 0. With
    it on, a small write that follows one not yet acknowledged waits for the client's delayed
    ACK: a call through the gate took 19 ms instead of 2 (benchmarks/lab_shell.py).
    """
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _Front(_Pipe):
    """The client's side: admitted or refused by the gate."""

    def __init__(self, gate: ConnectionGate) -> None:
        super().__init__()
        self._gate = gate
        self.key = ""
        self.peer = ""
        self.backend_name: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        _no_delay(transport)
        self._gate._admit(self)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._gate._forget(self)


class ConnectionGate(anyio.AsyncContextManagerMixin):
    """Listens on `host`:`port` (0: any free port) and hands the connections it admits to the
    server listening on the Unix socket `backend`. Entered, it listens; left, it stops listening
    and breaks the connections still open (stop the server first for a clean end)."""

    def __init__(self, host: str, port: int, *, backend: str, limits: ConnectionLimits | None = None) -> None:
        self.host = host
        self.port = port
        self.backend = backend
        self.limits = limits or ConnectionLimits()
        self._total = self.limits.total or 0
        self._per_peer: Counter[str] = Counter()
        self._fronts: set[_Front] = set()
        self._peers: dict[str, str] = {}  # backend socket name -> the client's address, for logs
        self._connecting: set[asyncio.Task[None]] = set()
        self._names = itertools.count()
        self._prefix = f"jumpstarter-gate-{os.getpid()}-{secrets.token_hex(4)}-"
        self._refusals = RefusalLog()

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def describe_peer(self, grpc_peer: str) -> str:
        """The TCP peer behind gRPC's name of a gated connection (``ipv4:10.0.0.7:51234``)."""
        name = grpc_peer.removeprefix("unix-abstract:")
        return self._peers.get(name, grpc_peer)

    def open_connections(self, host: str | None = None) -> int:
        """The connections open now: in all, or from the peer of `host`."""
        return len(self._fronts) if host is None else self._per_peer[peer_key(host)]

    @asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncIterator[ConnectionGate]:
        if self.limits.total is None:
            soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
            if soft == resource.RLIM_INFINITY:
                soft = 1 << 20
            self._total = max(16, (soft - _RESERVED_DESCRIPTORS) // _DESCRIPTORS_PER_CONNECTION)
        loop = asyncio.get_running_loop()
        servers = []
        try:
            for listening in self._bind():
                servers.append(await loop.create_server(lambda: _Front(self), sock=listening))
            yield self
        finally:
            for server in servers:
                server.close()
            for task in self._connecting:
                task.cancel()
            for front in list(self._fronts):
                for side in (front, front.other):
                    if side is not None and side.transport is not None:
                        side.transport.abort()
            with anyio.CancelScope(shield=True):
                for server in servers:
                    await server.wait_closed()
                if self._connecting:
                    await asyncio.wait(self._connecting)
            self._refusals.close()

    def _bind(self) -> list[socket.socket]:
        """The listening sockets: one per address of the host (both IPv6 and IPv4 for ``::``)."""
        sockets: list[socket.socket] = []
        try:
            if self.host in ("", "::"):
                sockets.append(socket.create_server(("::", self.port), family=socket.AF_INET6, dualstack_ipv6=True))
            else:
                infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
                for family, _, _, _, address in dict.fromkeys(infos):
                    port = sockets[0].getsockname()[1] if sockets else self.port
                    sockets.append(socket.create_server((address[0], port), family=family))
        except OSError as error:
            for listening in sockets:
                listening.close()
            reason = os.strerror(error.errno) if error.errno else str(error)
            raise OSError(f"cannot listen on {self.address}: {reason}") from None
        self.port = sockets[0].getsockname()[1]
        return sockets

    # -- connections (on the event loop) ---------------------------------------------------------

    def _admit(self, front: _Front) -> None:
        transport = front.transport
        assert transport is not None
        peername = transport.get_extra_info("peername")
        host, port = (peername[0], peername[1]) if isinstance(peername, tuple) else (str(peername), 0)
        front.key = peer_key(host)
        front.peer = f"ipv6:[{host}]:{port}" if ":" in host else f"ipv4:{host}:{port}"
        if self._per_peer[front.key] >= self.limits.per_peer:
            reason = f"it has {self.limits.per_peer} connections open, the most one peer may have"
        elif len(self._fronts) >= self._total:
            reason = f"{self._total} connections are open, the most this server takes"
        else:
            self._per_peer[front.key] += 1
            self._fronts.add(front)
            transport.pause_reading()  # until the server's side is connected
            task = asyncio.get_running_loop().create_task(self._connect(front))
            self._connecting.add(task)
            task.add_done_callback(self._connecting.discard)
            return
        self._refusals.note(f"refused a connection from {front.peer}: {reason}")
        transport.abort()

    async def _connect(self, front: _Front) -> None:
        loop = asyncio.get_running_loop()
        backend = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        name = f"{self._prefix}{next(self._names)}"
        try:
            try:
                # A name of its own, so that the server can tell this connection from the others.
                backend.bind(f"\0{name}")
            except OSError:  # no abstract names outside Linux: the server sees an unnamed peer
                name = ""
            backend.setblocking(False)
            await loop.sock_connect(backend, self.backend)
            _, back = await loop.create_unix_connection(_Pipe, sock=backend)
        except (OSError, asyncio.CancelledError):
            backend.close()
            if front.transport is not None:
                front.transport.abort()
            return
        if front.transport is None or front.transport.is_closing():
            back.transport.abort()  # type: ignore[union-attr]
            return
        front.other, back.other = back, front
        if name:
            front.backend_name = name
            self._peers[name] = front.peer
        front.transport.resume_reading()

    def _forget(self, front: _Front) -> None:
        if front in self._fronts:
            self._fronts.discard(front)
            self._per_peer[front.key] -= 1
            if self._per_peer[front.key] <= 0:
                del self._per_peer[front.key]
        if front.backend_name is not None:
            with contextlib.suppress(KeyError):
                del self._peers[front.backend_name]
