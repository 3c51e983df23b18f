"""An open pyserial port, and the anyio byte streams a driver serves over it.

Two ways to read and write without ever blocking the event loop:

- a port with a file descriptor (a local device, ``socket://``) is read and written on
  the event loop directly: non-blocking ``os.read``/``os.write`` of whole chunks, waiting
  with `anyio.wait_readable` / `anyio.wait_writable` only when the kernel has nothing;
- other ports (``loop://``, ``rfc2217://``, which pyserial implements with queues and
  threads) are read by one thread per open port with sized reads (a blocking read of one
  byte, then all that is waiting), into a bounded channel the event loop takes from;
  writes go to a worker thread.

Either way nothing is read byte by byte on the loop, and a slow client slows the reading
down (the kernel's, or the channel's, buffer fills up) instead of losing data.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio import BrokenResourceError, ClosedResourceError, EndOfStream
from anyio.abc import ByteStream

from jumpstarter.streams import ThreadChannel
from jumpstarter_driver_serial.errors import SerialPortGone

# The most a receive() returns (the gRPC frames that carry it are at most 512 KiB).
CHUNK_BYTES = 1 << 16
# A read at least this big suggests more is waiting: read on to make larger chunks.
COALESCE_FROM = 1024
# Bytes read ahead of the client on a port read by a thread (the kernel buffers ttys likewise).
READ_AHEAD_BYTES = 1 << 16
# How long a reader thread blocks in one read: the longest it takes to notice the port closing.
READ_POLL_SECONDS = 0.1


class OpenPort:
    """A pyserial port that a driver opened, and what its streams need to use it."""

    def __init__(self, port: Any, url: str) -> None:
        self.serial = port
        self.url = url
        self.fd, self.local = _file_descriptor(port)
        self.gone: SerialPortGone | None = None
        self._reader: _ThreadReader | None = None
        self._closed = False

    def lost(self, reason: BaseException | str | None) -> SerialPortGone:
        """Mark the port as gone (the device went away); return the error that says so."""
        if self.gone is None:
            detail = f" ({reason})" if reason else ""
            if self.local:
                what = "the device went away (unplugged, powered off, or its USB serial reset)"
            else:
                what = "the connection to the server that serves it closed"
            self.gone = SerialPortGone(
                f"lost the serial port {self.url}: {what}{detail}; the next connection opens it again"
            )
        return self.gone

    def stream(self, cps: float | None) -> ByteStream:
        if self.fd is not None:
            return FdStream(self, cps)
        if self._reader is None:
            self._reader = _ThreadReader(self, asyncio.get_running_loop())
        return ThreadStream(self, self._reader, cps)

    def close(self) -> None:
        """Stop the reader thread, if any, and close the port (in a worker thread: it may block)."""
        if self._closed:
            return
        self._closed = True
        reader, self._reader = self._reader, None
        try:
            if reader is not None:
                reader.stop_soon()
            self.serial.close()
        finally:
            if reader is not None:
                reader.join()


def _file_descriptor(port: Any) -> tuple[int | None, bool]:
    """(the descriptor to read the port with, if pyserial's implementation has a real one; whether it is a device)."""
    from serial import serialposix
    from serial.urlhandler import protocol_socket

    if isinstance(port, serialposix.Serial):  # a device path, hwgrep://
        return port.fd, True
    if type(port) is protocol_socket.Serial:
        return port.fileno(), False
    return None, False


class _Pacer:
    """Spaces out what is written to `cps` characters per second, one at a time when it can.

    Each character gets a time slot 1/cps after the previous one; when the event loop's
    timer cannot wake up that often (above about 1000 cps), the characters whose slots
    have passed go together. Slots carry over between writes, so two quick writes are
    paced as one.
    """

    def __init__(self, cps: float) -> None:
        self.interval = 1.0 / cps
        self._next = 0.0

    async def write(self, data: bytes, write: Callable[[bytes], Awaitable[None]]) -> None:
        view = memoryview(data)
        while view:
            now = anyio.current_time()
            if self._next > now:
                await anyio.sleep(self._next - now)
                now = anyio.current_time()
            else:
                self._next = now  # idle since the last slot: start afresh
            due = 1 + int((now - self._next) / self.interval)
            await write(bytes(view[:due]))
            view = view[due:]
            self._next += due * self.interval


class _SerialStream(ByteStream):
    """What both kinds of port streams share: pacing, and the end of a connection.

    `send_eof()` from the client means it is done: reading stops at once, so that what the
    device sends from then on stays in the port for the next connection instead of being
    read for a client that no longer listens. Nothing is sent to the device (a serial line
    cannot be half-closed), and the port stays open.
    """

    def __init__(self, port: OpenPort, cps: float | None) -> None:
        self._port = port
        self._pacer = _Pacer(cps) if cps else None
        self._closed = False
        self._client_done = False
        self._reading: anyio.CancelScope | None = None

    async def receive(self, max_bytes: int = CHUNK_BYTES) -> bytes:
        if self._closed:
            raise ClosedResourceError
        if not self._client_done:
            with anyio.CancelScope() as self._reading:
                return await self._read(max_bytes)
        raise EndOfStream

    async def _read(self, max_bytes: int) -> bytes:
        raise NotImplementedError

    async def send(self, item: bytes) -> None:
        if self._pacer is not None:
            await self._pacer.write(item, self._write)
        else:
            await self._write(item)

    async def _write(self, data: bytes) -> None:
        raise NotImplementedError

    def _check(self) -> None:
        if self._closed:
            raise ClosedResourceError
        if self._port.gone is not None:
            raise self._port.gone

    async def send_eof(self) -> None:
        """The client is done: stop reading (what comes next waits for the next connection); the port stays open."""
        self._client_done = True
        if self._reading is not None:
            self._reading.cancel()

    async def aclose(self) -> None:
        # The port stays open for the next connection; the driver closes it with the session.
        self._closed = True


class FdStream(_SerialStream):
    """A port with a file descriptor, read and written on the event loop without blocking it."""

    def __init__(self, port: OpenPort, cps: float | None) -> None:
        super().__init__(port, cps)
        assert port.fd is not None
        self._fd: int = port.fd
        os.set_blocking(self._fd, False)

    async def _read(self, max_bytes: int) -> bytes:
        while True:
            self._check()
            try:
                data = os.read(self._fd, max_bytes)
            except BlockingIOError:
                await anyio.wait_readable(self._fd)
                continue
            except OSError as error:
                raise self._port.lost(error) from None
            if not data:  # a tty that hung up, a socket that the server closed
                raise self._port.lost("end of file")
            return self._more(data, max_bytes)

    def _more(self, data: bytes, max_bytes: int) -> bytes:
        """`data` and what else is already waiting, up to `max_bytes`: a tty hands out at most 4 KiB per
        read, and every chunk becomes a message to the client; at full speed fewer, larger ones go faster."""
        if len(data) < COALESCE_FROM:
            return data  # a console's trickle: send it now
        chunks = [data]
        size = len(data)
        while size < max_bytes:
            try:
                more = os.read(self._fd, max_bytes - size)
            except OSError:
                break  # nothing more now (or an error, which the next receive() reports)
            if not more:
                break
            chunks.append(more)
            size += len(more)
        return b"".join(chunks)

    async def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            self._check()
            try:
                written = os.write(self._fd, view)
            except BlockingIOError:
                await anyio.wait_writable(self._fd)
                continue
            except OSError as error:
                raise self._port.lost(error) from None
            view = view[written:]


class _ThreadReader:
    """Reads a port without a file descriptor in a thread, into a channel for the event loop.

    It runs from the first stream over the port until the port is closed, so nothing read
    is lost between two connections (up to READ_AHEAD_BYTES wait for the next one).
    """

    def __init__(self, port: OpenPort, loop: asyncio.AbstractEventLoop) -> None:
        self._port = port
        self.channel: ThreadChannel[bytes] = ThreadChannel(loop, READ_AHEAD_BYTES, len)
        self.leftover = b""  # taken from the channel, not yet given to a client (kept for the next connection)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"serial-reader {port.url}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        serial = self._port.serial
        try:
            while not self._stopping:
                data = serial.read(1)  # blocks up to READ_POLL_SECONDS for the first byte
                if not data:
                    # Nothing yet. A lost rfc2217:// connection shows at the next read, which raises.
                    if not serial.is_open:
                        raise self._port.lost("the port closed")
                    continue
                waiting = serial.in_waiting
                if waiting:
                    data += serial.read(min(waiting, CHUNK_BYTES - 1))
                self.channel.put(data)  # waits while the client is behind
        except BrokenResourceError:
            pass  # stopped
        except Exception as error:
            if not self._stopping:
                gone = error if isinstance(error, SerialPortGone) else self._port.lost(error)
                self.channel.finish(gone)
                return
        self.channel.finish()

    def stop_soon(self) -> None:
        self._stopping = True
        self.channel.abort()
        cancel = getattr(self._port.serial, "cancel_read", None)
        if cancel is not None:
            with contextlib.suppress(Exception):  # best effort: the read times out anyway
                cancel()

    def join(self) -> None:
        self._thread.join()


class ThreadStream(_SerialStream):
    """A port without a file descriptor: reads from its reader thread, writes in worker threads."""

    def __init__(self, port: OpenPort, reader: _ThreadReader, cps: float | None) -> None:
        super().__init__(port, cps)
        self._reader = reader

    async def _read(self, max_bytes: int) -> bytes:
        reader = self._reader
        if not reader.leftover:
            try:
                (reader.leftover,) = await reader.channel.aget_batch(1)  # cancelled, it takes nothing
            except EndOfStream:
                raise self._port.gone or ClosedResourceError() from None
        chunk, reader.leftover = reader.leftover[:max_bytes], reader.leftover[max_bytes:]
        return chunk

    async def _write(self, data: bytes) -> None:
        self._check()
        try:
            await anyio.to_thread.run_sync(self._port.serial.write, data)
        except Exception as error:
            raise self._port.lost(error) from None
