"""Real peers on the loopback interface for the network drivers' tests.

Every server here runs in threads of this process and is shut down, with its threads
joined, when its fixture ends (the workspace fails tests that leave threads behind).
Plain helper functions are in testsupport.network (tests/support).
"""

from __future__ import annotations

import http.server
import os
import random
import shutil
import socket
import socketserver
import struct
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from testsupport.network import HalfCloser, HttpSite, UdpPeer


def _open_sockets() -> set[str]:
    """The network sockets this process has open: TCP, UDP, and Unix sockets with a path.

    Unnamed Unix sockets are left out: gRPC keeps a socket pair of its own for as long as
    it stays initialised, which outlives a test that holds on to an error's traceback.
    """
    inodes = {}
    for fd in os.listdir("/proc/self/fd"):
        with suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:["):
                inodes[target[8:-1]] = target
    network = set()
    for table in ("tcp", "tcp6", "udp", "udp6"):
        with suppress(OSError), open(f"/proc/net/{table}") as lines:
            network.update(line.split()[9] for line in list(lines)[1:])
    with suppress(OSError), open("/proc/net/unix") as lines:
        network.update(fields[6] for fields in map(str.split, list(lines)[1:]) if len(fields) > 7)
    return {name for inode, name in inodes.items() if inode in network}


@pytest.fixture(autouse=True)
def no_leftover_sockets() -> Iterator[None]:
    """Fail a test that leaves sockets open: forwards, streams and peers must close theirs."""
    if not os.path.isdir("/proc/self/fd"):
        yield
        return
    before = _open_sockets()
    yield
    deadline = time.monotonic() + 5
    while (leftover := _open_sockets() - before) and time.monotonic() < deadline:
        time.sleep(0.02)  # a closing event loop may still be releasing its sockets
    assert not leftover, f"the test left {len(leftover)} socket(s) open"


@contextmanager
def running(server: socketserver.BaseServer) -> Iterator[None]:
    """Serve `server` from a thread; shut it down and join its threads on exit."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="test-server")
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()  # ThreadingMixIn joins its handler threads here
        thread.join()


class _EchoHandler(socketserver.BaseRequestHandler):
    """Echoes until the client's end of stream, then sends b"<bye>" and closes."""

    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)
        self.request.sendall(b"<bye>")


class _TcpServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = False
    block_on_close = True


@pytest.fixture
def tcp_echo() -> Iterator[tuple[str, int]]:
    """A TCP echo server on 127.0.0.1; after the client's end of stream it sends b"<bye>"."""
    server = _TcpServer(("127.0.0.1", 0), _EchoHandler)
    with running(server):
        yield server.server_address[:2]


class _ResetHandler(socketserver.BaseRequestHandler):
    """Reads one chunk, answers part of it, then resets the connection (RST, not an end of stream)."""

    def handle(self) -> None:
        self.request.recv(65536)
        self.request.sendall(b"partial answer")
        reset(self.request)


def reset(sock: socket.socket) -> None:
    """Close `sock` with a reset: a zero linger time makes close() send RST."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class _SelectiveResetHandler(socketserver.BaseRequestHandler):
    """Echoes like tcp_echo, except a connection whose first bytes are b"reset": it is reset."""

    def handle(self) -> None:
        data = self.request.recv(65536)
        if data.startswith(b"reset"):
            self.request.sendall(b"partial answer")
            reset(self.request)
            return
        while data:
            self.request.sendall(data)
            data = self.request.recv(65536)
        self.request.sendall(b"<bye>")


@pytest.fixture
def tcp_echo_or_reset() -> Iterator[tuple[str, int]]:
    """tcp_echo, except that it resets the connections that start with b"reset"."""
    server = _TcpServer(("127.0.0.1", 0), _SelectiveResetHandler)
    with running(server):
        yield server.server_address[:2]


@pytest.fixture
def tcp_resetter() -> Iterator[tuple[str, int]]:
    """A TCP server that answers part of the first request, then resets the connection."""
    server = _TcpServer(("127.0.0.1", 0), _ResetHandler)
    with running(server):
        yield server.server_address[:2]


@pytest.fixture
def half_closer() -> Iterator[HalfCloser]:
    peer: HalfCloser

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.sendall(b"hello, then nothing more")
            self.request.shutdown(socket.SHUT_WR)
            data = b""
            while chunk := self.request.recv(65536):
                data += chunk
            peer.received.put(data)

    server = _TcpServer(("127.0.0.1", 0), Handler)
    peer = HalfCloser(server.server_address[:2])
    with running(server):
        yield peer


class _UdpServer(socketserver.UDPServer):
    allow_reuse_address = True
    max_packet_size = 1 << 16


@pytest.fixture
def udp_echo() -> Iterator[UdpPeer]:
    """A UDP server that sends each datagram back as it came, and keeps a list of them."""
    peer: UdpPeer

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            data, sock = self.request
            peer.received.append(data)
            sock.sendto(data, self.client_address)

    server = _UdpServer(("127.0.0.1", 0), Handler)
    server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    peer = UdpPeer(server.server_address[:2])
    with running(server):
        yield peer


@pytest.fixture
def udp_whoami() -> Iterator[tuple[str, int]]:
    """A UDP server that answers each datagram with it, prefixed by the sender's port: b"<port>:<data>"."""

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            data, sock = self.request
            sock.sendto(b"%d:" % self.client_address[1] + data, self.client_address)

    server = _UdpServer(("127.0.0.1", 0), Handler)
    with running(server):
        yield server.server_address[:2]


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A private directory with a short path: Unix socket paths are limited to about 100 bytes."""
    directory = tempfile.mkdtemp(prefix="jmp-net-")
    try:
        yield Path(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class _UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = False
    block_on_close = True


@pytest.fixture
def unix_echo(short_tmp: Path) -> Iterator[str]:
    """A Unix stream socket echo server (the same protocol as tcp_echo); yields its path."""
    path = str(short_tmp / "echo.sock")
    server = _UnixServer(path, _EchoHandler)
    with running(server):
        yield path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_site(tmp_path: Path) -> Iterator[HttpSite]:
    """The standard library's threading HTTP server, serving ten small pages and an 8 MiB file."""
    pages = {f"page{index}.html": f"<html>page {index}</html>\n".encode() * (index + 1) for index in range(10)}
    pages["big.bin"] = random.Random(7).randbytes(8 << 20)
    for name, content in pages.items():
        (tmp_path / name).write_bytes(content)

    def handler(*args: object) -> _QuietHandler:
        return _QuietHandler(*args, directory=str(tmp_path))  # type: ignore[arg-type]

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = False
    server.block_on_close = True
    with running(server):
        yield HttpSite(server.server_address[:2], pages)
