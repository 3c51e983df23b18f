"""Figures of the network drivers: a TCP port forward against the same transfer over loopback.

    uv run python benchmarks/network_forward.py [--size-mib 64] [--rounds 3] [--connections 200]

Three processes, as in real use: a target TCP server (this script with `--target`), an
exporter serving a `TcpNetwork` to it on a Unix socket (`--serve`), and this process, the
client, which opens `forward_tcp()` and measures through it; the same transfers go to the
target directly for comparison.

- upload / download: MB/s (10**6 bytes per second) of one connection sending (receiving)
  `--size-mib` MiB, best and median of `--rounds`;
- parallel download: 4 connections at once through the one forward, total MB/s;
- connection set-up: time from `connect()` to the first byte echoed back, median and p90
  over `--connections` connections (through the forward this includes opening a stream to
  the exporter and the exporter's own connection to the target).

Output: JSON Lines on stdout, one object per figure, then {"done": true, ...}. Progress goes
to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import socketserver
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

BUFFER = 1 << 20
START_TIMEOUT = 60.0


# -- the target ----------------------------------------------------------------------------


class _TargetHandler(socketserver.BaseRequestHandler):
    """b"U": read to the end, answer the byte count; b"D" + size: send that many bytes; b"E": echo."""

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        mode = sock.recv(1)
        buffer = memoryview(bytearray(BUFFER))
        if mode == b"U":
            total = 0
            while count := sock.recv_into(buffer):
                total += count
            sock.sendall(struct.pack("!Q", total))
        elif mode == b"D":
            (size,) = struct.unpack("!Q", _recv_exactly(sock, 8))
            while size:
                size -= sock.send(buffer[: min(size, BUFFER)])
        elif mode == b"E":
            while data := sock.recv(65536):
                sock.sendall(data)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError("the connection ended early")
        data += chunk
    return data


def run_target() -> None:
    """`--target`: serve on a free loopback port, print it, run until stdin closes."""
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _TargetHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(server.server_address[1], flush=True)
    sys.stdin.buffer.read()
    server.shutdown()


def run_exporter(port: int) -> None:
    """`--serve PORT`: an exporter session serving a TcpNetwork to 127.0.0.1:PORT; print its socket path."""
    from jumpstarter_driver_network.driver import TcpNetwork

    from jumpstarter.testing import serve_socket

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with serve_socket(TcpNetwork(host="127.0.0.1", port=port)) as path:
        print(path, flush=True)
        sys.stdin.buffer.read()


@contextmanager
def _child(*arguments: str) -> Iterator[str]:
    """This script run with `arguments`; yield the first line it prints; stop it on exit."""
    process = subprocess.Popen(
        [sys.executable, __file__, *arguments], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        timer = threading.Timer(START_TIMEOUT, process.kill)
        timer.start()
        line = process.stdout.readline().strip()
        timer.cancel()
        if not line:
            raise RuntimeError(f"{' '.join(arguments)} did not start (exit code {process.wait()})")
        yield line
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- measurements ------------------------------------------------------------------------------


def _connect(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def upload(address: tuple[str, int], size: int) -> float:
    """Seconds to send `size` bytes and have the target confirm it received them all."""
    payload = memoryview(os.urandom(BUFFER))
    start = time.perf_counter()
    with _connect(address) as sock:
        sock.sendall(b"U")
        left = size
        while left:
            left -= sock.send(payload[: min(left, BUFFER)])
        sock.shutdown(socket.SHUT_WR)
        (received,) = struct.unpack("!Q", _recv_exactly(sock, 8))
    elapsed = time.perf_counter() - start
    if received != size:
        raise AssertionError(f"the target received {received} bytes of {size}")
    return elapsed


def download(address: tuple[str, int], size: int) -> float:
    """Seconds to receive `size` bytes from the target, to its end of stream."""
    buffer = memoryview(bytearray(BUFFER))
    start = time.perf_counter()
    with _connect(address) as sock:
        sock.sendall(b"D" + struct.pack("!Q", size))
        received = 0
        while count := sock.recv_into(buffer):
            received += count
    elapsed = time.perf_counter() - start
    if received != size:
        raise AssertionError(f"received {received} bytes of {size}")
    return elapsed


def setup_time(address: tuple[str, int]) -> float:
    """Seconds from connect() to the first byte echoed back."""
    start = time.perf_counter()
    with _connect(address) as sock:
        sock.sendall(b"E!")
        if sock.recv(1) != b"!":
            raise AssertionError("no echo")
        elapsed = time.perf_counter() - start
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(65536):
            pass
    return elapsed


def _rate(size: int, seconds: list[float]) -> dict[str, float]:
    rates = [size / s / 1e6 for s in seconds]
    return {"best_mb_s": round(max(rates), 1), "median_mb_s": round(statistics.median(rates), 1)}


def _latency(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "median_ms": round(statistics.median(ordered) * 1e3, 3),
        "p90_ms": round(ordered[int(len(ordered) * 0.9)] * 1e3, 3),
    }


def _emit(figure: dict[str, Any]) -> None:
    print(json.dumps(figure), flush=True)


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def measure(name: str, function: Callable[[], dict[str, Any]]) -> None:
    _progress(f"measuring {name}")
    try:
        _emit({"figure": name, **function()})
    except Exception as error:  # a figure that fails does not stop the others
        _emit({"figure": name, "error": f"{type(error).__name__}: {error}"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--target", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.target:
        return run_target()
    if args.serve is not None:
        return run_exporter(args.serve)

    from jumpstarter.client import connect

    size = args.size_mib << 20
    started = time.perf_counter()
    _emit({"benchmark": "network_forward", "size_mib": args.size_mib, "rounds": args.rounds, "cpus": os.cpu_count()})
    with _child("--target") as target_port, _child("--serve", target_port) as path, connect(path) as client:
        direct = ("127.0.0.1", int(target_port))
        with client.forward_tcp() as forwarded:
            for label, address in (("direct", direct), ("forward", forwarded)):
                measure(f"upload_{label}", lambda a=address: _rate(size, [upload(a, size) for _ in range(args.rounds)]))
                measure(
                    f"download_{label}",
                    lambda a=address: _rate(size, [download(a, size) for _ in range(args.rounds)]),
                )

                def parallel(a: tuple[str, int] = address) -> dict[str, Any]:
                    each = size // 4
                    rounds = []
                    for _ in range(args.rounds):
                        start = time.perf_counter()
                        with ThreadPoolExecutor(4) as pool:
                            list(pool.map(lambda _: download(a, each), range(4)))
                        rounds.append(time.perf_counter() - start)
                    return {**_rate(each * 4, rounds), "connections": 4}

                measure(f"parallel_download_{label}", parallel)
                measure(
                    f"connection_setup_{label}",
                    lambda a=address: {
                        **_latency([setup_time(a) for _ in range(args.connections)]),
                        "connections": args.connections,
                    },
                )
    _emit({"done": True, "seconds": round(time.perf_counter() - started, 1)})


if __name__ == "__main__":
    main()
