"""Network drivers: a TCP or UDP port, or a Unix socket, near the exporter, tunnelled to clients.

Each driver's `connect` stream opens a new connection to its target; clients reach it with
`NetworkClient` (``client.stream()``, or a local port that forwards to it). Class paths,
method names and configuration keys are the original jumpstarter's, so that its clients
and exporter configurations work with these drivers, and ours with its exporters.

This module is imported by exporters only; clients import `jumpstarter_driver_network.client`.
"""

from __future__ import annotations

import socket
from abc import ABCMeta, abstractmethod
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import ByteStream, ObjectStream
from anyio.streams.stapled import StapledObjectStream

from jumpstarter.driver import Driver, export, exportstream
from jumpstarter_driver_network.addresses import is_ip_address, join_host_port, unbracket
from jumpstarter_driver_network.targets import FramedDatagrams, open_tcp, open_udp, open_unix


class NetworkInterface(metaclass=ABCMeta):
    """A network endpoint near the exporter; `connect` opens a new connection to it."""

    @classmethod
    def client(cls) -> str:
        return "jumpstarter_driver_network.client.NetworkClient"

    @abstractmethod
    def connect(self) -> AbstractAsyncContextManager[Any]:
        """An `@exportstream`: a new connection to the target."""


@dataclass(kw_only=True)
class TcpNetwork(NetworkInterface, Driver):
    """A TCP port near the exporter, such as a board's SSH server, web UI or debug server.

    Each `connect` stream is a new TCP connection to `host`:`port`. Half-close works both
    ways: the client's end of stream shuts down the connection's write side, and the
    target closing its side ends the client's stream. A target that refuses, does not
    resolve or does not answer fails the stream at connect; a reset fails it later.
    """

    host: str
    """Host name or IP address of the target, as the exporter reaches it."""
    port: int
    """TCP port of the target."""
    enable_address: bool = True
    """Whether `address()` may tell clients the target's address (for clients on the same network)."""
    connect_timeout: float = 10.0
    """Seconds to wait for the target to accept a connection."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.host = unbracket(self.host)
        _check_port(self.port)
        if not self.connect_timeout > 0:
            raise ValueError(f"connect_timeout must be a positive number of seconds, not {self.connect_timeout!r}")

    @exportstream
    @asynccontextmanager
    async def connect(self) -> AsyncIterator[ByteStream]:
        """A new TCP connection to the target."""
        self.logger.debug("connecting to TCP %s", join_host_port(self.host, self.port))
        async with await open_tcp(self.host, self.port, self.connect_timeout) as stream:
            yield stream

    @export
    async def address(self) -> str:
        """The target's address, ``tcp://host:port``, the host name resolved by the exporter."""
        _check_enabled(self.enable_address, self)
        return "tcp://" + await _resolved(self.host, self.port, socket.SOCK_STREAM)


@dataclass(kw_only=True)
class UdpNetwork(NetworkInterface, Driver):
    """A UDP port near the exporter: datagrams go to `host`:`port`, and its answers come back.

    `connect` carries one datagram per stream message both ways, as the original does, for
    its clients. `datagrams` carries them length-prefixed (see `framing`), so that their
    boundaries survive any stream, empty datagrams included: `NetworkClient.datagrams()` and
    `forward_udp()` use it. UDP has no connection: a target that is not there drops what
    it is sent (the exporter logs its "port unreachable"), and the stream stays open.
    """

    host: str
    """Host name or IP address of the target, as the exporter reaches it."""
    port: int
    """UDP port of the target."""
    enable_address: bool = True
    """Whether `address()` may tell clients the target's address."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.host = unbracket(self.host)
        _check_port(self.port)

    @exportstream
    @asynccontextmanager
    async def connect(self) -> AsyncIterator[ObjectStream[bytes]]:
        """A UDP socket connected to the target: each message one datagram, both ways."""
        self.logger.debug("opening UDP to %s", join_host_port(self.host, self.port))
        async with await open_udp(self.host, self.port, self.logger) as datagrams:
            yield datagrams

    @exportstream
    @asynccontextmanager
    async def datagrams(self) -> AsyncIterator[ByteStream]:
        """The same socket, each datagram prefixed with its length (4 bytes, big-endian), both ways."""
        where = "UDP " + join_host_port(self.host, self.port)
        self.logger.debug("opening %s (length-prefixed datagrams)", where)
        async with await open_udp(self.host, self.port, self.logger) as datagrams:
            yield FramedDatagrams(datagrams, where, self.logger)

    @export
    async def address(self) -> str:
        """The target's address, ``udp://host:port``, the host name resolved by the exporter."""
        _check_enabled(self.enable_address, self)
        return "udp://" + await _resolved(self.host, self.port, socket.SOCK_DGRAM)


@dataclass(kw_only=True)
class UnixNetwork(NetworkInterface, Driver):
    """A Unix domain stream socket on the exporter's machine, such as a QEMU monitor or a debug agent."""

    path: str
    """Path of the socket."""
    enable_address: bool = True
    """Whether `address()` may tell clients the socket's path."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.path:
            raise ValueError("path must name a Unix socket")

    @exportstream
    @asynccontextmanager
    async def connect(self) -> AsyncIterator[ByteStream]:
        """A new connection to the socket."""
        self.logger.debug("connecting to Unix socket %s", self.path)
        async with await open_unix(self.path) as stream:
            yield stream

    @export
    async def address(self) -> str:
        """The socket's path, as ``unix://path``."""
        _check_enabled(self.enable_address, self)
        return "unix://" + self.path


@dataclass(kw_only=True)
class EchoNetwork(NetworkInterface, Driver):
    """A mock network endpoint that sends back what it receives, for trying clients without a network.

    Half-close works as with a real peer: once the client ends its side, it receives the
    rest of the echo, then the end of the stream. It has no address.
    """

    @exportstream
    @asynccontextmanager
    async def connect(self) -> AsyncIterator[ObjectStream[bytes]]:
        """A loopback stream."""
        send, receive = anyio.create_memory_object_stream[bytes](32)
        async with StapledObjectStream(send, receive) as stream:
            yield stream


def _check_port(port: int) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise ValueError(f"port must be a port number from 1 to 65535, not {port!r}")


def _check_enabled(enabled: bool, driver: Driver) -> None:
    if not enabled:
        # A ValueError, as in the original, whose client turns it into its own message.
        raise ValueError(
            f"{type(driver).__name__} does not tell its address: enable_address is false in the exporter's "
            "configuration; connect through the driver instead (j <name> forward-tcp)"
        )


async def _resolved(host: str, port: int, kind: socket.SocketKind) -> str:
    """host:port with the host name resolved here, on the exporter, where the name has a meaning.

    A client elsewhere may not resolve the lab's names, or resolve them differently. A
    name that does not resolve is kept as written.
    """
    if not is_ip_address(host):
        try:
            infos = await anyio.getaddrinfo(host, port, type=kind)
        except OSError:
            infos = []
        if infos:
            host = str(infos[0][4][0])
    return join_host_port(host, port)


__all__ = ["EchoNetwork", "NetworkInterface", "TcpNetwork", "UdpNetwork", "UnixNetwork"]
