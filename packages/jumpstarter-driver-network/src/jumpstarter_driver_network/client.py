"""`NetworkClient`: reach a network port near the exporter from the client's machine.

    with client.forward_tcp() as (host, port):      # a local port; each connection a new stream
        subprocess.run(["ssh", "-p", str(port), f"root@{host}", "uname -a"])

    with client.stream() as connection:              # one connection, as a byte stream
        connection.send(b"GET / HTTP/1.0\\r\\n\\r\\n")
        connection.send_eof()
        page = b"".join(connection)

    with client.datagrams() as udp:                  # UdpNetwork: one datagram per send/receive
        udp.send(b"ping")
        answer = udp.receive(timeout=1)

This module is what client processes import: it imports neither the drivers nor click
(until `cli()` is called).
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    AsyncExitStack,
    asynccontextmanager,
    contextmanager,
)
from typing import TYPE_CHECKING

import anyio
from anyio.abc import AnyByteStream, ObjectStream

from jumpstarter.client import DriverClient, DriverMethodNotImplemented
from jumpstarter_driver_network.forward import serve_tcp, serve_unix
from jumpstarter_driver_network.forward_udp import serve_udp
from jumpstarter_driver_network.framing import MAX_DATAGRAM, DatagramDecoder, encode_datagram

if TYPE_CHECKING:
    import click
    from anyio.from_thread import BlockingPortal

# How long the UDP forward keeps the stream of a local peer that sends and receives nothing.
UDP_IDLE_SECONDS = 60.0


class NetworkClient(DriverClient):
    """A network port near the exporter: TCP, UDP or a Unix socket.

    `stream()` opens one connection to the target; the forwards make it reachable from
    local programs (a browser, ssh, a debugger) as a local port or socket.
    """

    # -- the target ----------------------------------------------------------------------

    def address(self) -> str:
        """The target's address as the exporter reaches it: ``tcp://host:port``, ``udp://...``, ``unix://path``.

        Raises DriverInvalidArgument (a ValueError) when the exporter's configuration hides
        it (``enable_address: false``), and DriverMethodNotImplemented for drivers that have
        none (EchoNetwork).
        """
        address: str = self.call("address")
        return address

    async def address_async(self) -> str:
        """Async twin of `address`."""
        address: str = await self.call_async("address")
        return address

    # -- forwards ------------------------------------------------------------------------

    def forward_tcp(
        self, port: int = 0, host: str = "127.0.0.1", *, method: str = "connect"
    ) -> AbstractContextManager[tuple[str, int]]:
        """Listen on a local TCP port; each connection accepted opens a new stream to the target.

        A context manager that yields the address it listens on, ``(host, port)``; `port`
        0 picks a free port. A connection whose stream cannot be opened (the target refuses
        it, say) or breaks is reset and logged; the others go on. Leaving the context stops
        listening and resets the connections still open.

            with client.forward_tcp() as (host, port):
                urllib.request.urlopen(f"http://{host}:{port}/")
        """
        return self.portal.wrap_async_context_manager(self.forward_tcp_async(port, host, method=method))

    def forward_tcp_async(
        self, port: int = 0, host: str = "127.0.0.1", *, method: str = "connect"
    ) -> AbstractAsyncContextManager[tuple[str, int]]:
        """Async twin of `forward_tcp`, for code on the client's event loop."""
        return serve_tcp(lambda: self.stream_async(method), host=host, port=port, logger=self.logger)

    def forward_unix(self, path: str | None = None, *, method: str = "connect") -> AbstractContextManager[str]:
        """Listen on a local Unix socket; each connection accepted opens a new stream to the target.

        A context manager that yields the socket's path. Without `path`, the socket is made
        in a new private directory (only this user can connect). Leaving the context removes
        the socket (and that directory).
        """
        return self.portal.wrap_async_context_manager(self.forward_unix_async(path, method=method))

    def forward_unix_async(
        self, path: str | None = None, *, method: str = "connect"
    ) -> AbstractAsyncContextManager[str]:
        """Async twin of `forward_unix`."""
        return serve_unix(lambda: self.stream_async(method), path=path, logger=self.logger)

    def forward_udp(
        self, port: int = 0, host: str = "127.0.0.1", *, idle_timeout: float = UDP_IDLE_SECONDS
    ) -> AbstractContextManager[tuple[str, int]]:
        """Listen on a local UDP port and relay datagrams to a UdpNetwork's target and back.

        Each local peer gets its own stream, so that the target's answers return to the
        program that asked, closed after `idle_timeout` seconds without traffic. Yields
        ``(host, port)``.
        """
        return self.portal.wrap_async_context_manager(self.forward_udp_async(port, host, idle_timeout=idle_timeout))

    def forward_udp_async(
        self, port: int = 0, host: str = "127.0.0.1", *, idle_timeout: float = UDP_IDLE_SECONDS
    ) -> AbstractAsyncContextManager[tuple[str, int]]:
        """Async twin of `forward_udp`."""
        if not idle_timeout > 0:
            raise ValueError(f"idle_timeout must be a positive number of seconds, not {idle_timeout!r}")
        return serve_udp(self.datagrams_async, host=host, port=port, idle_timeout=idle_timeout, logger=self.logger)

    # -- datagrams -----------------------------------------------------------------------

    @contextmanager
    def datagrams(self) -> Iterator[DatagramSocket]:
        """Datagrams to and from a UdpNetwork's target, their boundaries kept (blocking API).

        Use this rather than `stream()` for UDP: a blocking byte stream joins small writes
        into larger frames, which would merge datagrams. Empty datagrams are carried too
        (except by exporters of the original jumpstarter).
        """
        with self.portal.wrap_async_context_manager(self.datagrams_async()) as stream:
            yield DatagramSocket(stream, self.portal)

    @asynccontextmanager
    async def datagrams_async(self) -> AsyncIterator[ObjectStream[bytes]]:
        """Async twin of `datagrams`: an object stream, one item per datagram.

        Uses UdpNetwork's `datagrams` stream, whose length prefixes keep boundaries whatever
        the stream does with its frames. An exporter of the original jumpstarter has none:
        its `connect` carries one datagram per message, which the async stream keeps.
        """
        async with AsyncExitStack() as stack:
            framed = True
            try:
                stream = await stack.enter_async_context(self.stream_async("datagrams"))
            except DriverMethodNotImplemented:
                if self.connection.typed:  # one of ours: its UdpNetwork has `datagrams`
                    raise DriverMethodNotImplemented(
                        f"driver {self.name or 'root'!r} has no datagram stream: datagrams() and forward_udp() "
                        "are for UdpNetwork"
                    ) from None
                framed = False
            if not framed:
                stream = await stack.enter_async_context(self.stream_async("connect"))
            yield FramedDatagramStream(stream) if framed else MessageDatagramStream(stream)

    # -- command line --------------------------------------------------------------------

    def cli(self) -> click.Group:
        """``address``, ``forward-tcp``, ``forward-unix`` and ``forward-udp``."""
        from jumpstarter_driver_network.cli import add_commands

        group = super().cli()
        add_commands(group, self)
        return group


class FramedDatagramStream(ObjectStream[bytes]):
    """Datagrams over UdpNetwork's `datagrams` stream: each one length-prefixed (see `framing`)."""

    def __init__(self, stream: AnyByteStream) -> None:
        self._stream = stream
        self._decoder = DatagramDecoder()
        self._ready: deque[bytes] = deque()

    async def send(self, item: bytes) -> None:
        _check_size(item)
        await self._stream.send(encode_datagram(bytes(item)))

    async def receive(self) -> bytes:
        while not self._ready:
            self._ready.extend(self._decoder.feed(await self._stream.receive()))
        return self._ready.popleft()

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()


class MessageDatagramStream(ObjectStream[bytes]):
    """Datagrams as the original's UdpNetwork carries them over `connect`: one stream message each.

    The client's async stream sends each write as one message and returns one message per
    read, so boundaries hold; an empty datagram would be no message at all, so it is refused.
    """

    def __init__(self, stream: AnyByteStream) -> None:
        self._stream = stream

    async def send(self, item: bytes) -> None:
        _check_size(item)
        if not item:
            raise ValueError("an empty datagram cannot travel over the UDP stream of this exporter")
        await self._stream.send(bytes(item))

    async def receive(self) -> bytes:
        return await self._stream.receive()

    async def send_eof(self) -> None:
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()


def _check_size(datagram: bytes) -> None:
    if len(datagram) > MAX_DATAGRAM:
        raise ValueError(f"a datagram of {len(datagram)} bytes: UDP carries at most {MAX_DATAGRAM}")


class DatagramSocket:
    """Blocking datagrams over the client's event loop: one `send`, one datagram."""

    def __init__(self, stream: ObjectStream[bytes], portal: BlockingPortal) -> None:
        self._stream = stream
        self._portal = portal

    def send(self, datagram: bytes) -> None:
        """Send one datagram (up to 65527 bytes)."""
        self._portal.call(self._stream.send, bytes(datagram))

    def receive(self, timeout: float | None = None) -> bytes:
        """The next datagram; TimeoutError after `timeout` seconds without one (None: wait for it)."""
        return self._portal.call(self._receive, timeout)

    async def _receive(self, seconds: float | None) -> bytes:
        try:
            with anyio.fail_after(seconds):
                return await self._stream.receive()
        except TimeoutError:
            raise TimeoutError(f"no datagram within {seconds:g} s") from None

    def __iter__(self) -> Iterator[bytes]:
        """The datagrams as they come, until the stream ends."""
        while True:
            try:
                yield self.receive()
            except anyio.EndOfStream:
                return


__all__ = ["DatagramSocket", "FramedDatagramStream", "MessageDatagramStream", "NetworkClient"]
