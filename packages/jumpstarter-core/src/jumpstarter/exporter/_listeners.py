"""Where an exporter listens: a Unix socket, and a TCP port protected by TLS and a token.

The TCP port is a `ConnectionGate` in front of a gRPC server on a private Unix socket: the
gate limits the connections per peer and in all, the server bounds the time a connection
takes to complete its handshakes and refuses calls without the token before reading them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import grpc

from jumpstarter.common.allocator import tune_allocator
from jumpstarter.exporter._provider import SessionProvider
from jumpstarter.exporter._servicer import grpc_server
from jumpstarter.exporter.auth import TlsIdentity
from jumpstarter.exporter.gate import ConnectionGate, ConnectionLimits
from jumpstarter.exporter.guard import HANDSHAKE_SECONDS, TokenAuthentication, handshake_options

__all__ = ["Listening", "ServerFactory", "TcpListener", "listen", "private_socket_path", "serve_gated"]

# How long stopping a server waits for the calls in progress (then they are cancelled).
SERVER_STOP_GRACE_SECONDS = 1.0


@dataclass(frozen=True)
class TcpListener:
    """A TCP port; without `tls` and `token` it is plaintext and open to anyone who can reach it."""

    host: str
    port: int
    tls: TlsIdentity | None = None
    token: str | None = field(default=None, repr=False)
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)
    """How many connections one peer, and all together, may hold open."""
    handshake_seconds: float = HANDSHAKE_SECONDS
    """How long a connection may take to complete its TLS and HTTP/2 handshakes."""


@dataclass
class Listening:
    """The addresses an exporter is serving on."""

    unix_path: str | None = None
    tcp_address: str | None = None


@asynccontextmanager
async def listen(provider: SessionProvider, *, unix_path: str | None = None, tcp: TcpListener | None = None,
                 private_unix: bool = False) -> AsyncIterator[Listening]:  # fmt: skip
    """Serve the sessions of `provider` (an `Exporter`, a `SingleSession`...) on the given
    listeners until the context exits; `private_unix` makes a socket in a new private directory.

    The provider is entered first and left last. The Unix socket is private to the user
    (0600) and needs no token; the TCP listener has its own server, so that its token
    applies to it alone. On exit the servers stop (calls still running get a short grace),
    the socket is removed and the provider ends its sessions, closing their drivers.
    """
    listening = Listening()
    # Calls that carry megabytes must not map and unmap fresh pages each time (see the module).
    tune_allocator()
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(provider)
        if unix_path is not None or private_unix:
            path = unix_path or stack.enter_context(private_socket_path())
            server = grpc_server(provider)
            with _prepared_socket_path(path), _private_umask():
                server.add_insecure_port(f"unix://{path}")
                await server.start()
            stack.push_async_callback(_stop, server)
            stack.callback(_remove_socket, path)
            listening.unix_path = path
        if tcp is not None:
            gate = await stack.enter_async_context(
                serve_gated(tcp, lambda interceptors, options: grpc_server(provider, interceptors, options))
            )
            listening.tcp_address = gate.address
        yield listening


ServerFactory = Callable[[list[grpc.aio.ServerInterceptor] | None, list[tuple[str, Any]]], grpc.aio.Server]
"""Makes a gRPC server with its services, given the interceptors and options of a gated listener."""


@asynccontextmanager
async def serve_gated(tcp: TcpListener, make_server: ServerFactory) -> AsyncIterator[ConnectionGate]:
    """Serve the server `make_server` makes on `tcp`'s port, behind a `ConnectionGate`; yield the gate.

    The gate's `address` is where it listens; its `describe_peer` names the TCP peer of a call.

    The server listens on a private Unix socket, with TLS if `tcp.tls`, refuses calls without
    `tcp.token` (if any) before reading them, and bounds handshakes; the gate limits connections
    per peer and in all. On exit the server stops (calls running get a short grace), then the gate.
    The exporter's TCP listener and the lab controller's router use it.
    """
    async with AsyncExitStack() as stack:
        backend = stack.enter_context(private_socket_path())
        gate = ConnectionGate(tcp.host, tcp.port, backend=backend, limits=tcp.limits)
        authentication = TokenAuthentication(tcp.token, describe_peer=gate.describe_peer) if tcp.token else None
        server = make_server([authentication] if authentication else None, handshake_options(tcp.handshake_seconds))
        if authentication is not None:
            stack.callback(authentication.close)
        with _private_umask():
            if tcp.tls is not None:
                server.add_secure_port(f"unix://{backend}", tcp.tls.server_credentials())
            else:
                server.add_insecure_port(f"unix://{backend}")
        await server.start()
        try:
            await stack.enter_async_context(gate)
        except BaseException:
            await _stop(server)
            raise
        # Stopped before the gate closes, so that clients see a clean end through it.
        stack.push_async_callback(_stop, server)
        yield gate


async def _stop(server: grpc.aio.Server) -> None:
    with anyio.CancelScope(shield=True):
        # A grace period lets clients see a clean shutdown rather than an error.
        await server.stop(grace=SERVER_STOP_GRACE_SECONDS)


@contextlib.contextmanager
def _prepared_socket_path(path: str) -> Iterator[None]:
    """Check that `path` can take a socket: a leftover socket nobody listens on is removed."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise OSError(f"cannot listen on {path}: the directory {directory} does not exist")
    if os.path.lexists(path):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise OSError(f"cannot listen on {path}: it exists and is not a socket")
        with socket.socket(socket.AF_UNIX) as probe:
            try:
                probe.connect(path)
            except OSError:
                os.unlink(path)  # a socket left behind by an exporter that died
            else:
                raise OSError(f"cannot listen on {path}: another exporter is listening there")
    yield


@contextlib.contextmanager
def _private_umask() -> Iterator[None]:
    # The socket file is created with the process's umask: make it owner-only from the start.
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def _remove_socket(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


@contextlib.contextmanager
def private_socket_path() -> Iterator[str]:
    """A socket path in a new directory that only this user can enter, removed afterwards."""
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR")
    directory = tempfile.mkdtemp(
        prefix="jumpstarter-", dir=runtime_dir if runtime_dir and os.path.isdir(runtime_dir) else None
    )
    try:
        yield os.path.join(directory, "session.sock")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
