"""Opening connections to a network driver's target, on the exporter, with errors that say what failed.

`open_tcp`, `open_unix` and `open_udp` return anyio streams; a target that refuses, does
not resolve or does not answer raises `ConnectionError` at once, with a message naming the
target and the reason, which the client receives as `DriverConnectionError` when it opens
the stream (rather than a stream that hangs or ends without a word).

Imported by the drivers only.
"""

from __future__ import annotations

import errno
import logging
import os
import socket

import anyio
import anyio.lowlevel
from anyio import BrokenResourceError
from anyio.abc import ByteStream, ObjectStream

from jumpstarter.common import connect_unix
from jumpstarter_driver_network.addresses import join_host_port
from jumpstarter_driver_network.framing import MAX_DATAGRAM, DatagramDecoder, encode_datagram

# Bytes read from a target at a time when the reader does not say: asyncio hands over up to
# 256 KiB per read, and larger chunks make fewer frames to the client.
READ_BYTES = 256 * 1024


async def open_tcp(host: str, port: int, connect_timeout: float) -> ByteStream:
    """A TCP connection to `host`:`port`, failing with ConnectionError after `connect_timeout` seconds."""
    where = "TCP " + join_host_port(host, port)
    try:
        with anyio.fail_after(connect_timeout):
            stream = await anyio.connect_tcp(host, port)
    except TimeoutError as error:
        if error.errno is None:  # our deadline, not the system's ETIMEDOUT
            raise ConnectionError(f"cannot connect to {where}: no answer within {connect_timeout:g} s") from None
        raise ConnectionError(f"cannot connect to {where}: {describe_os_error(error)}") from None
    except OSError as error:
        raise ConnectionError(f"cannot connect to {where}: {describe_os_error(error)}") from None
    return TargetStream(stream, where)


async def open_unix(path: str) -> ByteStream:
    """A connection to the Unix stream socket `path`."""
    where = f"Unix socket {path}"
    try:
        stream = await connect_unix(path)
    except OSError as error:
        raise ConnectionError(f"cannot connect to {where}: {describe_os_error(error)}") from None
    return TargetStream(stream, where)


async def open_udp(host: str, port: int, logger: logging.Logger) -> UdpDatagrams:
    """A UDP socket connected to `host`:`port` (no packet is sent: connecting only fixes the peer)."""
    where = "UDP " + join_host_port(host, port)
    try:
        family, kind, proto, _, address = (await anyio.getaddrinfo(host, port, type=socket.SOCK_DGRAM))[0]
        udp = socket.socket(family, kind, proto)
    except OSError as error:
        raise ConnectionError(f"cannot open {where}: {describe_os_error(error)}") from None
    try:
        udp.setblocking(False)
        udp.connect(address)
    except OSError as error:
        udp.close()
        raise ConnectionError(f"cannot open {where}: {describe_os_error(error)}") from None
    return UdpDatagrams(udp, where, logger)


def describe_os_error(error: OSError) -> str:
    """A short, human explanation of why opening a socket failed."""
    if isinstance(error, socket.gaierror):
        return f"the host name does not resolve ({error.strerror or error})"
    cause = error.__cause__
    if error.errno is None and isinstance(cause, OSError):
        return describe_os_error(cause)  # anyio's "All connection attempts failed" hides the real error
    if error.errno is None and isinstance(cause, BaseExceptionGroup):
        reasons = (describe_os_error(e) for e in cause.exceptions if isinstance(e, OSError))
        return "; ".join(dict.fromkeys(reasons)) or str(error)
    if error.errno is None:
        return str(error) or type(error).__name__
    hint = {
        errno.ECONNREFUSED: "nothing listens there",
        errno.ENOENT: "no such socket: is the server running?",
        errno.EACCES: "the exporter's user may not open it",
    }.get(error.errno)
    text = os.strerror(error.errno).lower()
    return f"{text} ({hint})" if hint else text


class TargetStream(ByteStream):
    """A connection to a target, whose failures name the target, read in large pieces.

    A reset by the target ends the client's stream with an error (never a clean end, which
    would let a cut-off answer pass for a whole one); raised here as ConnectionResetError
    with the target's name, the client reads "TCP 192.168.2.10:22: connection reset by peer"
    rather than a bare errno. `receive()` returns up to READ_BYTES by default, as the
    exporter reads without saying: fewer, larger messages to the client (about twice the
    throughput of anyio's 64 KiB).
    """

    def __init__(self, stream: ByteStream, where: str) -> None:
        self._stream = stream
        self._where = where

    async def receive(self, max_bytes: int = READ_BYTES) -> bytes:
        try:
            return await self._stream.receive(max_bytes)
        except BrokenResourceError as error:
            raise self._broken(error) from None

    async def send(self, item: bytes) -> None:
        try:
            await self._stream.send(item)
        except BrokenResourceError as error:
            raise self._broken(error) from None

    async def send_eof(self) -> None:
        try:
            await self._stream.send_eof()
        except (BrokenResourceError, OSError) as error:
            raise self._broken(error) from None

    async def aclose(self) -> None:
        await self._stream.aclose()

    def _broken(self, error: BaseException) -> ConnectionResetError:
        cause = error.__cause__ if isinstance(error.__cause__, OSError) else error
        reason = describe_os_error(cause) if isinstance(cause, OSError) else "the connection broke"
        return ConnectionResetError(f"{self._where}: {reason}")


class UdpDatagrams(ObjectStream[bytes]):
    """A connected, non-blocking UDP socket as an object stream: one item is one datagram.

    Used directly rather than through anyio's UDP socket, whose asyncio transport drops
    empty datagrams when sending (Python 3.11) and keeps only the last 100 received, and
    hides the target's ICMP errors: here a "port unreachable" is logged (once) and the
    stream goes on, as the target may start listening later. `send_eof` does nothing (UDP
    has no end: answers may still come). What the network would drop is dropped with a log
    line: a datagram too large for UDP, one the system has no room for.
    """

    def __init__(self, udp: socket.socket, where: str, logger: logging.Logger) -> None:
        self._udp = udp
        self._where = where
        self._logger = logger
        self._refused = False

    async def send(self, item: bytes) -> None:
        if len(item) > MAX_DATAGRAM:
            self._logger.warning(
                "%s: dropped a datagram of %d bytes, over UDP's %d", self._where, len(item), MAX_DATAGRAM
            )
            return
        while True:
            try:
                self._udp.send(item)
                return
            except BlockingIOError:
                await anyio.wait_writable(self._udp)
            except ConnectionRefusedError:
                self._port_unreachable()  # reported for an earlier datagram: send this one anyway
            except OSError as error:
                self._logger.warning("%s: dropped a datagram: %s", self._where, describe_os_error(error))
                return

    async def receive(self) -> bytes:
        while True:
            try:
                return self._udp.recv(1 << 16)
            except BlockingIOError:
                await anyio.wait_readable(self._udp)
            except ConnectionRefusedError:
                self._port_unreachable()

    def _port_unreachable(self) -> None:
        if not self._refused:
            self._refused = True
            self._logger.warning("%s answers port unreachable: nothing listens there (yet)", self._where)

    async def send_eof(self) -> None:
        await anyio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        if self._udp.fileno() >= 0:
            anyio.notify_closing(self._udp)
            self._udp.close()
        await anyio.lowlevel.checkpoint()


class FramedDatagrams(ByteStream):
    """A byte stream of length-prefixed datagrams (see `framing`) over an object stream of datagrams.

    What the client sends is decoded into datagrams however it was split or joined on the
    way; what the target sends comes back encoded, one datagram after the other.
    """

    def __init__(self, datagrams: ObjectStream[bytes], where: str, logger: logging.Logger) -> None:
        self._datagrams = datagrams
        self._where = where
        self._logger = logger
        self._decoder = DatagramDecoder()
        self._received = b""

    async def send(self, item: bytes) -> None:
        for datagram in self._decoder.feed(item):
            await self._datagrams.send(datagram)

    async def receive(self, max_bytes: int = READ_BYTES) -> bytes:
        if not self._received:
            self._received = encode_datagram(await self._datagrams.receive())
        chunk, self._received = self._received[:max_bytes], self._received[max_bytes:]
        return chunk

    async def send_eof(self) -> None:
        if self._decoder.pending:
            self._logger.warning(
                "%s: the client's datagrams ended in the middle of one (%d bytes dropped)",
                self._where,
                self._decoder.pending,
            )
        await self._datagrams.send_eof()

    async def aclose(self) -> None:
        await self._datagrams.aclose()
