"""An exporter process that dies mid-call, mid-stream or mid-transfer: the client says so, clearly."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator

import anyio
import pytest

from jumpstarter.client import DriverConnectionError, connect

EXPORTER = textwrap.dedent(
    """
    import sys, time
    from contextlib import asynccontextmanager
    import anyio
    from anyio.streams.stapled import StapledObjectStream
    from jumpstarter.driver import Driver, export, exportstream
    from jumpstarter.testing import serve_socket_async

    class Board(Driver):
        @classmethod
        def client(cls):
            return "jumpstarter.client.DriverClient"

        @export
        def hang(self):
            time.sleep(60)

        @export
        def count(self):
            i = 0
            while True:
                yield i
                i += 1
                time.sleep(0.01)

        @export
        async def consume(self, handle):
            async with self.resource(handle) as stream:
                async for chunk in stream:
                    await anyio.sleep(0.01)

        @exportstream
        @asynccontextmanager
        async def connect(self):
            send, receive = anyio.create_memory_object_stream[bytes](32)
            async with StapledObjectStream(send, receive) as stream:
                yield stream

    async def main():
        async with serve_socket_async(Board()) as path:
            print(path, flush=True)
            await anyio.sleep_forever()

    anyio.run(main)
    """
)


@pytest.fixture
def exporter() -> Iterator[tuple[subprocess.Popen[str], str]]:
    process = subprocess.Popen([sys.executable, "-c", EXPORTER], stdout=subprocess.PIPE, text=True)
    try:
        path = process.stdout.readline().strip()  # type: ignore[union-attr]
        assert path, "the exporter did not start"
        yield process, path
    finally:
        process.kill()
        process.wait()
        process.stdout.close()  # type: ignore[union-attr]


def kill_soon(process: subprocess.Popen[str], delay: float = 0.3) -> threading.Timer:
    timer = threading.Timer(delay, process.send_signal, (signal.SIGKILL,))
    timer.start()
    return timer


def test_a_call_in_progress(exporter: tuple[subprocess.Popen[str], str]) -> None:
    process, path = exporter
    with connect(path) as client:
        kill_soon(process).join()
        with pytest.raises(DriverConnectionError, match="lost the connection to the exporter"):
            client.call("hang")
        with pytest.raises(DriverConnectionError, match="lost the connection to the exporter"):
            client.call("hang")  # and every call after


def test_a_streaming_call_in_progress(exporter: tuple[subprocess.Popen[str], str]) -> None:
    process, path = exporter
    with connect(path) as client:
        received = []
        timer = kill_soon(process)
        with pytest.raises(DriverConnectionError, match="lost the connection to the exporter"):
            for item in client.streamingcall("count"):
                received.append(item)
        timer.join()
        assert received[:3] == [0, 1, 2]


def test_a_byte_stream_in_progress(exporter: tuple[subprocess.Popen[str], str]) -> None:
    process, path = exporter
    with connect(path) as client, client.stream() as stream:
        stream.send(b"ping")
        assert stream.receive() == b"ping"
        kill_soon(process, 0).join()
        with pytest.raises(anyio.BrokenResourceError, match="the stream broke"):
            stream.receive()


def test_a_resource_in_progress(exporter: tuple[subprocess.Popen[str], str]) -> None:
    process, path = exporter
    with connect(path) as client:
        timer = kill_soon(process)
        with (
            pytest.raises(DriverConnectionError, match="lost the connection to the exporter"),
            client.resource(iter(b"x" * 65536 for _ in range(10_000))) as handle,
        ):
            client.call("consume", handle)
        timer.join()
