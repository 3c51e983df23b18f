"""Serial console figures: bytes per second from the device to the client through the whole stack,
and the round trip of one character, next to the same pseudo-terminal read directly with pyserial.

    uv run python benchmarks/serial_throughput.py                  # JSON on stdout
    uv run python benchmarks/serial_throughput.py --scale 0.1      # a quick check
    uv run python benchmarks/serial_throughput.py --json out.json  # also write the JSON to a file

The device is a pseudo-terminal whose master side is driven by a process of its own (this
script with ``--device``): a source that writes a pattern as fast as the pty takes it, a
sink that reads, or an echo. The stack is real: the exporter (this script with
``--serve``) serves `PySerial` on the pty's slave in its own process, and this process is
the client, connected to the exporter's Unix socket. "pyserial" is the same pty opened with
`serial.Serial` in this process, read with ``read(in_waiting or 1)``: the floor under any
driver.

Output: one JSON object, {"figures": [...], ...}; progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

PATTERN = bytes(range(256)) * 256  # 64 KiB
START = b"G"  # tells a --device process to begin


# -- the device and the exporter, each in its own process ----------------------------------------


def run_device(mode: str, fd: int, size: int) -> None:
    """`--device MODE FD SIZE`: drive the pty master `fd` once a byte comes on stdin."""
    os.set_blocking(fd, True)
    sys.stdin.buffer.read(1)
    if mode == "source":
        sent = 0
        while sent < size:
            sent += os.write(fd, PATTERN[: min(len(PATTERN), size - sent)])
    elif mode == "sink":
        received = 0
        while received < size:
            received += len(os.read(fd, 1 << 16))
        sys.stdout.write("done\n")
        sys.stdout.flush()
    elif mode == "echo":
        while True:
            data = os.read(fd, 1 << 16)
            if not data:
                break
            os.write(fd, data)
    sys.stdin.buffer.read()  # until the benchmark is done with us


def run_exporter(url: str) -> None:
    """`--serve URL`: serve PySerial(url) on a Unix socket, print its path, run until stdin closes."""
    from jumpstarter_driver_serial.driver import PySerial

    from jumpstarter.testing import serve_socket

    with serve_socket(PySerial(url=url)) as path:
        print(path, flush=True)
        sys.stdin.buffer.read()


@contextmanager
def pty_pair() -> Iterator[tuple[int, str]]:
    """A pseudo-terminal: (master fd, slave path); the port under test is the only one to open the slave."""
    master, slave = os.openpty()
    path = os.ttyname(slave)
    os.close(slave)
    try:
        yield master, path
    finally:
        os.close(master)


@contextmanager
def device(mode: str, master: int, size: int = 0) -> Iterator[subprocess.Popen[bytes]]:
    process = subprocess.Popen(
        [sys.executable, __file__, "--device", mode, str(master), str(size)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        pass_fds=(master,),
    )
    try:
        yield process
    finally:
        process.stdin.close()
        process.kill()
        process.wait()
        process.stdout.close()


@contextmanager
def exporter(url: str) -> Iterator[Any]:
    """A client of PySerial(url) served by an exporter in its own process."""
    from jumpstarter.client import connect

    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        path = process.stdout.readline().strip()
        with connect(path, allow=["jumpstarter_driver_serial.*"]) as client:
            yield client
    finally:
        process.stdin.close()
        process.wait(15)
        process.stdout.close()


# -- figures -------------------------------------------------------------------------------------


def _throughput(size: int, open_port: Callable[[str], Any], read: Callable[[Any], bytes]) -> dict[str, float]:
    with pty_pair() as (master, slave), open_port(slave) as port, device("source", master, size) as source:
        received = 0
        checked = bytearray()
        started = time.perf_counter()
        source.stdin.write(START)
        source.stdin.flush()
        while received < size:
            chunk = read(port)
            if len(checked) < len(PATTERN):
                checked += chunk
            received += len(chunk)
        seconds = time.perf_counter() - started
    assert bytes(checked[: len(PATTERN)]) == PATTERN[: len(checked[: len(PATTERN)])], "the data arrived altered"
    return {"bytes": size, "seconds": round(seconds, 4), "mb_per_s": round(size / seconds / 1e6, 2)}


def _upload(size: int, open_port: Callable[[str], Any], write: Callable[[Any, bytes], None]) -> dict[str, float]:
    with pty_pair() as (master, slave), open_port(slave) as port, device("sink", master, size) as sink:
        sink.stdin.write(START)
        sink.stdin.flush()
        started = time.perf_counter()
        for offset in range(0, size, len(PATTERN)):
            write(port, PATTERN[: min(len(PATTERN), size - offset)])
        assert sink.stdout.readline() == b"done\n"
        seconds = time.perf_counter() - started
    return {"bytes": size, "seconds": round(seconds, 4), "mb_per_s": round(size / seconds / 1e6, 2)}


def _round_trips(count: int, open_port: Callable[[str], Any], exchange: Callable[[Any], None]) -> dict[str, float]:
    with pty_pair() as (master, slave), open_port(slave) as port, device("echo", master) as echo:
        echo.stdin.write(START)
        echo.stdin.flush()
        for _ in range(max(10, count // 20)):  # warm-up
            exchange(port)
        times = []
        for _ in range(count):
            started = time.perf_counter()
            exchange(port)
            times.append(time.perf_counter() - started)
    times.sort()
    return {
        "round_trips": count,
        "median_us": round(statistics.median(times) * 1e6, 1),
        "p99_us": round(times[int(len(times) * 0.99) - 1] * 1e6, 1),
    }


@contextmanager
def _jumpstarter_stream(slave: str) -> Iterator[Any]:
    with exporter(slave) as client, client.stream() as stream:
        yield stream


@contextmanager
def _pyserial_port(slave: str) -> Iterator[Any]:
    import serial

    port = serial.Serial(slave, 115200, timeout=5)
    try:
        yield port
    finally:
        port.close()


def _stream_exchange(stream: Any) -> None:
    stream.send(b"x")
    assert stream.receive() == b"x"


def _pyserial_exchange(port: Any) -> None:
    port.write(b"x")
    assert port.read(1) == b"x"


def _pyserial_read(port: Any) -> bytes:
    return port.read(port.in_waiting or 1)


def figures(scale: float) -> list[dict[str, Any]]:
    size = max(1 << 20, int((64 << 20) * scale))
    count = max(100, int(2000 * scale))
    runs = [
        ("device_to_client", "jumpstarter", lambda: _throughput(size, _jumpstarter_stream, lambda s: s.receive())),
        ("device_to_client", "pyserial", lambda: _throughput(size, _pyserial_port, _pyserial_read)),
        ("client_to_device", "jumpstarter", lambda: _upload(size, _jumpstarter_stream, lambda s, d: s.send(d))),
        ("client_to_device", "pyserial", lambda: _upload(size, _pyserial_port, lambda p, d: p.write(d))),
        ("char_round_trip", "jumpstarter", lambda: _round_trips(count, _jumpstarter_stream, _stream_exchange)),
        ("char_round_trip", "pyserial", lambda: _round_trips(count, _pyserial_port, _pyserial_exchange)),
    ]
    results = []
    for figure, path, run in runs:
        print(f"{figure} ({path})...", file=sys.stderr, flush=True)
        try:
            results.append({"figure": figure, "path": path, **run()})
        except Exception as error:  # one broken figure must not hide the others
            results.append({"figure": figure, "path": path, "error": f"{type(error).__name__}: {error}"})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fewer bytes and round trips (0.1: a quick check)")
    parser.add_argument("--json", metavar="FILE", help="also write the results to FILE")
    parser.add_argument("--device", nargs=3, metavar=("MODE", "FD", "SIZE"), help=argparse.SUPPRESS)
    parser.add_argument("--serve", metavar="URL", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.device:
        mode, fd, size = options.device
        run_device(mode, int(fd), int(size))
        return
    if options.serve:
        run_exporter(options.serve)
        return
    started = time.monotonic()
    result = {
        "benchmark": "serial_throughput",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "scale": options.scale,
        "figures": figures(options.scale),
        "seconds": round(time.monotonic() - started, 1),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if options.json:
        with open(options.json, "w") as file:
            file.write(text + "\n")


if __name__ == "__main__":
    main()
