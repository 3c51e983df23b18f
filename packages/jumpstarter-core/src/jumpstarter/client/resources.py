"""Local ends of client resources: what a client streams to a driver, or receives from it."""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio import EndOfStream
from anyio.abc import (
    AnyByteReceiveStream,
    AnyByteSendStream,
    ByteReceiveStream,
    ByteSendStream,
    ObjectReceiveStream,
    ObjectSendStream,
)

CHUNK_SIZE = 1 << 20


class LocalEndpoint:
    """A local source and/or sink of bytes with anyio stream methods."""

    readable = False
    writable = False

    async def receive(self) -> bytes:
        raise EndOfStream

    async def send(self, data: bytes) -> None:
        raise NotImplementedError


class _Memory(LocalEndpoint):
    readable = True

    def __init__(self, data: bytes) -> None:
        self._view = memoryview(data)

    async def receive(self) -> bytes:
        if not self._view:
            raise EndOfStream
        chunk, self._view = self._view[:CHUNK_SIZE], self._view[CHUNK_SIZE:]
        return bytes(chunk)


class _File(LocalEndpoint):
    """A binary file object; reads and writes run in worker threads."""

    def __init__(self, file: Any) -> None:
        self._file = anyio.wrap_file(file)
        self.readable = _can(file, "readable")
        self.writable = _can(file, "writable")

    async def receive(self) -> bytes:
        chunk = await self._file.read(CHUNK_SIZE)
        if not chunk:
            raise EndOfStream
        return bytes(chunk)

    async def send(self, data: bytes) -> None:
        await self._file.write(data)


class _Iterable(LocalEndpoint):
    readable = True

    def __init__(self, iterable: Iterable[bytes] | AsyncIterable[bytes]) -> None:
        self._async: AsyncIterator[bytes] | None
        self._sync: Iterator[bytes]
        if isinstance(iterable, AsyncIterable):
            self._async = aiter(iterable)
            self._sync = iter(())
        else:
            self._async = None
            self._sync = iter(iterable)

    async def receive(self) -> bytes:
        if self._async is not None:
            try:
                return bytes(await anext(self._async))
            except StopAsyncIteration:
                raise EndOfStream from None
        item = await anyio.to_thread.run_sync(_next_or_none, self._sync)
        if item is None:
            raise EndOfStream
        return bytes(item)


def _next_or_none(iterator: Iterator[bytes]) -> bytes | None:
    return next(iterator, None)


_RECEIVE_STREAMS = (ByteReceiveStream, ObjectReceiveStream)
_SEND_STREAMS = (ByteSendStream, ObjectSendStream)
_ANYIO_STREAMS = (*_RECEIVE_STREAMS, *_SEND_STREAMS)


class _Stream(LocalEndpoint):
    """An anyio stream, used as it is."""

    def __init__(self, stream: AnyByteReceiveStream | AnyByteSendStream) -> None:
        self._receiver = stream if isinstance(stream, _RECEIVE_STREAMS) else None
        self._sender = stream if isinstance(stream, _SEND_STREAMS) else None
        self.readable = self._receiver is not None
        self.writable = self._sender is not None

    async def receive(self) -> bytes:
        if self._receiver is None:
            return await super().receive()
        return await self._receiver.receive()

    async def send(self, data: bytes) -> None:
        if self._sender is None:
            return await super().send(data)
        await self._sender.send(data)


def _can(file: Any, what: str) -> bool:
    try:
        return bool(getattr(file, what)())
    except (AttributeError, ValueError, OSError):
        return False


@asynccontextmanager
async def local_endpoint(source: Any) -> AsyncIterator[LocalEndpoint]:
    """Adapt what a user passes to `DriverClient.resource`.

    - bytes (or bytearray, memoryview): sent to the driver;
    - a path (str or os.PathLike): the file is opened and sent;
    - a binary file object: read and sent if it is readable, and what the driver sends
      back is written to it if it is writable;
    - an anyio byte stream (or object stream of bytes): both ways, as it supports;
    - an iterable or async iterable of bytes: sent.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        yield _Memory(bytes(source))
    elif isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as file:  # noqa: ASYNC230 - opening is quick; reads run in threads
            yield _File(file)
    elif isinstance(source, io.IOBase) or (hasattr(source, "read") or hasattr(source, "write")):
        if isinstance(source, io.TextIOBase):
            raise TypeError("a resource needs a binary file: open it with 'rb' or 'wb'")
        yield _File(source)
    elif isinstance(source, _ANYIO_STREAMS):
        yield _Stream(source)
    elif isinstance(source, (Iterable, AsyncIterable)):
        yield _Iterable(source)
    else:
        raise TypeError(
            f"cannot use a {type(source).__name__} as a resource: pass bytes, a path, a binary file, "
            "an anyio stream or an iterable of bytes"
        )
