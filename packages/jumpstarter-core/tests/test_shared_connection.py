"""A lease's socket shares one connection to the exporter among its clients (client._shared_connection).

Between it and the exporter, a relay stands for the tunnel through the router: it counts the
connections made (each a Dial in a lab), and can break them and refuse new ones, as a path
that breaks or an exporter that went away does.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import SocketStream
from anyio.from_thread import BlockingPortal, start_blocking_portal

from jumpstarter.client import connect
from jumpstarter.client._shared_connection import shared_connection
from jumpstarter.common.exceptions import DriverConnectionError, DriverError, ExporterConnectionLost
from jumpstarter.common.unix_sockets import connect_unix, create_unix_listener
from jumpstarter.driver import Driver, export
from jumpstarter.streams.copy import splice
from jumpstarter.testing import serve_socket_async


class Counter(Driver):
    """State that lives as long as the session: a new session would start again from 0."""

    def __init__(self) -> None:
        super().__init__()
        self.value = 0

    @classmethod
    def client(cls) -> str:
        return "jumpstarter.client.DriverClient"

    @export
    def next(self) -> int:
        self.value += 1
        return self.value

    @export
    def unplugged(self) -> None:
        raise ConnectionError("the board's USB cable is out")  # travels as UNAVAILABLE

    @export
    def unreadable(self) -> None:
        raise OSError(5, "Input/output error")  # travels as INTERNAL


class Relay:
    def __init__(self, target: str) -> None:
        self.target = target
        self.accepted = 0
        self.broken = False
        self._scopes: set[anyio.CancelScope] = set()

    async def carry(self, local: SocketStream) -> None:
        async with local:
            if self.broken:
                return
            self.accepted += 1
            with anyio.CancelScope() as scope:
                self._scopes.add(scope)
                async with await connect_unix(self.target) as remote:
                    try:
                        await splice(local, remote)
                    except* anyio.BrokenResourceError:
                        pass  # one side reset its connection: a path carries that, closing the other
            self._scopes.discard(scope)

    def break_all(self) -> None:
        self.broken = True
        for scope in self._scopes:
            scope.cancel()


@asynccontextmanager
async def served(directory: Path, errors: list[Any]) -> AsyncIterator[tuple[str, Relay]]:
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda loop, context: errors.append(context))
    # The relay's Unix sockets are ours (jumpstarter.common.unix_sockets): cancelled as bytes arrive
    # (break_all, or on the way out), they leave no error here.
    async with serve_socket_async(Counter()) as exporter, anyio.create_task_group() as tasks:
        relay = Relay(exporter)
        listener = await create_unix_listener(directory / "relay")
        tasks.start_soon(listener.serve, relay.carry)
        async with shared_connection(f"unix:{directory / 'relay'}", str(directory / "socket")) as path:
            yield path, relay
        tasks.cancel_scope.cancel()


@contextmanager
def lab_socket() -> Iterator[tuple[str, Relay, list[Any], BlockingPortal]]:
    """The served socket, its relay, the errors the event loop met, and the portal to that loop."""
    errors: list[Any] = []
    with (
        tempfile.TemporaryDirectory() as directory,
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(served(Path(directory), errors)) as (path, relay),
    ):
        yield path, relay, errors, portal


def next_value(path: str) -> int:
    with connect(path) as client:
        return int(client.call("next"))


def test_clients_share_one_connection_and_a_broken_one_is_made_again() -> None:
    with lab_socket() as (path, relay, errors, portal):
        assert [next_value(path) for _ in range(3)] == [1, 2, 3]  # three clients, one session
        # One connection (one Dial) for all of them, once the first report said the exporter takes pings
        # (until then, the connection of the first calls, which does not ping).
        assert relay.accepted == 2
        assert next_value(path) == 4 and relay.accepted == 2

        with connect(path) as client:
            assert client.call("next") == 5
            portal.call(relay.break_all)  # the path breaks under a connected client
            with pytest.raises(Exception, match="the leased exporter cannot be reached through the router"):
                client.call("next")
        with pytest.raises(Exception, match="cannot be reached through the router"):
            next_value(path)  # a new client while the path is down: a clear error, at once

        relay.broken = False  # the path is back: the next client gets a new connection
        assert next_value(path) == 6  # the same session
        assert relay.accepted == 3
        # The channels replaced during the outage are closed: none dials in the background (gRPC retries a channel
        # in TRANSIENT_FAILURE after its backoff, 200 ms at first here, for as long as something keeps it alive).
        time.sleep(1)
        assert relay.accepted == 3
    assert errors == []  # nothing went wrong behind the clients' backs, on the way out included


def test_a_drivers_connection_or_os_error_is_the_drivers_not_the_paths() -> None:
    with lab_socket() as (path, relay, errors, _portal), connect(path) as client:
        assert client.call("next") == 1
        with pytest.raises(DriverConnectionError) as unplugged:
            client.call("unplugged")
        assert str(unplugged.value) == "the board's USB cable is out"
        assert not isinstance(unplugged.value, ExporterConnectionLost)
        with pytest.raises(DriverError) as unreadable:
            client.call("unreadable")
        assert str(unreadable.value) == "[Errno 5] Input/output error"
        assert client.call("next") == 2 and relay.accepted == 2  # the path was never taken for broken
        assert errors == []
