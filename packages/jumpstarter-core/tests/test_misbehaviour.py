"""Driver code and callers that misbehave: the exporter keeps serving and the client hears why."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest
from anyio.abc import SocketStream
from click.testing import CliRunner

from jumpstarter.client import DriverConnectionError, DriverError, DriverInvalidArgument
from jumpstarter.common.utils import serve, serve_async
from jumpstarter.common.wire import MAX_DETAILS_CHARACTERS
from jumpstarter.driver import Composite, Driver, export, exportstream
from jumpstarter.exporter import Session
from jumpstarter.streams.frames import FrameStream
from jumpstarter.v1 import router_pb2


@dataclass(kw_only=True)
class Unruly(Driver):
    """Raises what driver code must not raise, and streams from a TCP peer that may reset."""

    peer_port: int = 0

    @classmethod
    def client(cls) -> str:
        return "jumpstarter.client.DriverClient"

    @export
    def exit(self) -> None:
        raise SystemExit(3)

    @export
    async def interrupt(self) -> None:
        raise KeyboardInterrupt

    @export
    def exit_while_streaming(self):
        yield 1
        raise SystemExit(4)

    @export
    def long_complaint(self) -> None:
        raise ValueError("x" * 50_000)

    @export
    async def wait(self, seconds: float) -> str:
        await anyio.sleep(seconds)
        return "waited"

    @export
    def ok(self) -> str:
        return "ok"

    @exportstream
    @asynccontextmanager
    async def peer(self) -> AsyncIterator[SocketStream]:
        async with await anyio.connect_tcp("127.0.0.1", self.peer_port) as stream:
            yield stream


@pytest.mark.parametrize("method", ["exit", "interrupt"])
def test_exit_or_interrupt_in_a_driver_call_fails_the_call_only(method: str) -> None:
    with serve(Unruly()) as client:
        with pytest.raises(DriverError, match=r"the driver raised (SystemExit\(3\)|KeyboardInterrupt\(\))"):
            client.call(method)
        assert client.call("ok") == "ok"


def test_exit_in_a_streaming_call_ends_the_stream_with_an_error() -> None:
    with serve(Unruly()) as client:
        received = []
        with pytest.raises(DriverError, match=r"SystemExit\(4\)"):
            received.extend(client.streamingcall("exit_while_streaming"))
        assert received == [1]
        assert client.call("ok") == "ok"


def test_a_very_long_error_message_arrives_cut_with_its_class() -> None:
    with serve(Unruly()) as client, pytest.raises(DriverInvalidArgument) as raised:
        client.call("long_complaint")
    message = str(raised.value)
    assert message.startswith("x" * MAX_DETAILS_CHARACTERS)
    assert message.endswith(f"... ({50_000 - MAX_DETAILS_CHARACTERS} more characters in the exporter's log)")


def test_a_cancel_scope_around_an_async_call_cancels_it() -> None:
    async def main() -> None:
        async with serve_async(Unruly()) as client:
            with anyio.move_on_after(0.2) as scope:
                await client.call_async("wait", 30)
            assert scope.cancelled_caught
            assert await client.call_async("wait", 0) == "waited"

    anyio.run(main)


@pytest.fixture
def resetting_peer() -> Any:
    """A TCP server that answers part of a reply, then resets the connection (SO_LINGER 0)."""
    server = socket.create_server(("127.0.0.1", 0))
    yield server
    server.close()


def test_a_driver_stream_that_breaks_is_an_error_not_an_end(resetting_peer: socket.socket) -> None:
    port = resetting_peer.getsockname()[1]
    with serve(Unruly(peer_port=port)) as client, client.stream("peer") as stream:
        connection, _ = resetting_peer.accept()
        connection.sendall(b"half of the ans")
        assert stream.receive() == b"half of the ans"
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        connection.close()
        with pytest.raises(anyio.BrokenResourceError, match="the driver's stream broke"):
            stream.receive()


@dataclass(kw_only=True)
class Fragile(Driver):
    label: str
    events: list[str] = field(default_factory=list)
    fail_reset: bool = False

    @classmethod
    def client(cls) -> str:
        return "jumpstarter.client.DriverClient"

    def reset(self) -> None:
        self.events.append(f"reset {self.label}")
        if self.fail_reset:
            raise OSError("the relay does not answer")

    def close(self) -> None:
        self.events.append(f"close {self.label}")


def test_a_failing_reset_closes_what_was_reset() -> None:
    events: list[str] = []
    first = Fragile(label="first", events=events)
    broken = Fragile(label="broken", events=events, fail_reset=True)
    never = Fragile(label="never", events=events)
    root = Composite(children={"first": first, "broken": broken, "never": never})

    async def main() -> None:
        with pytest.raises(OSError, match="the relay does not answer"):
            async with Session(root):
                pass

    anyio.run(main)
    assert events == ["reset first", "reset broken", "close broken", "close first"]


def test_a_driver_without_its_client_class_says_why_for_any_command() -> None:
    @dataclass(kw_only=True)
    class Lamp(Driver):
        @classmethod
        def client(cls) -> str:
            return "lamp_vendor.client.LampClient"

    with serve(Composite(children={"lamp": Lamp()})) as client:
        result = CliRunner().invoke(client.cli(), ["lamp", "on"])
    assert result.exit_code == 1
    assert "lamp_vendor.client.LampClient" in result.output and "No such command" not in result.output


class _ControlledCall:
    """A RouterService call whose reads the test completes by hand."""

    def __init__(self) -> None:
        self.reads: list[asyncio.Future[Any]] = []

    def read(self) -> asyncio.Future[Any]:
        self.reads.append(asyncio.get_running_loop().create_future())
        return self.reads[-1]


def test_a_frame_that_arrives_as_its_reader_is_cancelled_is_not_lost() -> None:
    async def main() -> None:
        call = _ControlledCall()
        frames = FrameStream(call, client_side=True)
        reader = asyncio.ensure_future(frames.receive())
        await asyncio.sleep(0)
        # The frame arrives and the reader is cancelled in the same turn of the loop.
        call.reads[0].set_result(router_pb2.StreamResponse(payload=b"precious"))
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        assert await frames.receive() == b"precious"

    anyio.run(main)


def test_a_connection_error_of_a_driver_is_not_a_lost_exporter() -> None:
    from jumpstarter.client import ExporterConnectionLost

    @dataclass(kw_only=True)
    class Unplugged(Driver):
        @classmethod
        def client(cls) -> str:
            return "jumpstarter.client.DriverClient"

        @export
        def read(self) -> None:
            raise ConnectionResetError("the serial adapter was unplugged")

    with serve(Unplugged()) as client, pytest.raises(DriverConnectionError) as raised:
        client.call("read")
    assert not isinstance(raised.value, ExporterConnectionLost)


def test_leaving_a_stream_after_send_eof_does_not_wait_for_the_linger_timeout() -> None:
    from jumpstarter.client.connection import STREAM_LINGER_SECONDS

    @dataclass(kw_only=True)
    class Chatterbox(Driver):
        """A console that keeps talking whatever the client says, and never ends its side."""

        @classmethod
        def client(cls) -> str:
            return "jumpstarter.client.DriverClient"

        @exportstream
        @asynccontextmanager
        async def connect(self) -> AsyncIterator[Any]:
            class Talking:
                async def send(self, item: bytes) -> None:
                    pass

                async def send_eof(self) -> None:
                    pass

                async def receive(self) -> bytes:
                    await anyio.sleep(0.01)
                    return b"blah"

                async def aclose(self) -> None:
                    pass

            yield Talking()

    with serve(Chatterbox()) as client:
        started = time.monotonic()
        with client.stream() as stream:
            stream.send(b"quit")
            stream.send_eof()  # acknowledged by the exporter while the client still reads
            assert stream.receive() == b"blah"
            time.sleep(0.2)
        assert time.monotonic() - started < STREAM_LINGER_SECONDS
