"""Helpers of the network drivers' tests (fixtures are in conftest.py)."""

from __future__ import annotations

import os
import queue
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A port nothing listens on right now (the system picks it; a race is unlikely on loopback)."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def unresponsive_tcp() -> Iterator[tuple[str, int]]:
    """A TCP port whose connection attempts hang: a listener that never accepts, its backlog full."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    address = listener.getsockname()
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            with suppress(BlockingIOError):  # the attempt stays pending: that is the point
                filler.connect(address)
            fillers.append(filler)
        yield address
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def recv_all(sock: socket.socket) -> bytes:
    """Everything the peer sends until its end of stream."""
    chunks = []
    while chunk := sock.recv(1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def sshd_path() -> str | None:
    path = shutil.which("sshd") or "/usr/sbin/sshd"
    return path if os.access(path, os.X_OK) else None


@dataclass
class HalfCloser:
    """A TCP server that greets, closes its sending side, and keeps reading until the client ends."""

    address: tuple[str, int]
    received: queue.Queue[bytes] = field(default_factory=queue.Queue)


@dataclass
class UdpPeer:
    address: tuple[str, int]
    received: list[bytes] = field(default_factory=list)


@dataclass
class HttpSite:
    address: tuple[str, int]
    pages: dict[str, bytes]

    def url(self, base: tuple[str, int], name: str) -> str:
        return f"http://{base[0]}:{base[1]}/{name}"
