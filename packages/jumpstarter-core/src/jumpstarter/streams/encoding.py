"""Compressed byte streams (the ``x_jmp_content_encoding`` of resources)."""

from __future__ import annotations

import bz2
import lzma
import zlib
from collections.abc import Callable
from typing import Any

import anyio
from anyio import EndOfStream
from anyio.abc import AnyByteStream, ByteStream

# Chunks larger than this are (de)compressed in a worker thread to keep the event loop free.
_THREAD_THRESHOLD = 64 * 1024


def _zstd() -> Any:
    try:
        # Python 3.14 and later (the type checker checks for 3.11, where the module does not exist).
        from compression import zstd  # type: ignore[import-not-found]
    except ImportError:
        from backports import zstd  # the same module for older versions
    return zstd


def _decompressor(encoding: str) -> Any:
    match encoding:
        case "gzip":
            return zlib.decompressobj(wbits=47)  # a gzip or a zlib header
        case "xz":
            return lzma.LZMADecompressor()
        case "bz2":
            return bz2.BZ2Decompressor()
        case "zstd":
            return _zstd().ZstdDecompressor()
    raise ValueError(f"unknown content encoding {encoding!r}")


def _compressor(encoding: str) -> Any:
    match encoding:
        case "gzip":
            return zlib.compressobj(wbits=31)
        case "xz":
            return lzma.LZMACompressor()
        case "bz2":
            return bz2.BZ2Compressor()
        case "zstd":
            return _zstd().ZstdCompressor()
    raise ValueError(f"unknown content encoding {encoding!r}")


async def _run(function: Callable[[bytes], bytes], data: bytes) -> bytes:
    if len(data) > _THREAD_THRESHOLD:
        return await anyio.to_thread.run_sync(function, data)
    return function(data)


class EncodedStream(ByteStream):
    """Wraps a stream of compressed bytes: receives decompressed bytes, compresses what it sends."""

    def __init__(self, stream: AnyByteStream, encoding: str) -> None:
        self._stream = stream
        self._decompressor = _decompressor(encoding)
        self._compressor = _compressor(encoding)
        self._leftover = b""
        self._received_eof = False

    async def receive(self, max_bytes: int = 65536) -> bytes:
        while not self._leftover:
            if self._received_eof:
                raise EndOfStream
            try:
                chunk = await self._stream.receive()
            except EndOfStream:
                self._received_eof = True
                flush = getattr(self._decompressor, "flush", None)
                self._leftover = flush() if flush is not None else b""
                continue
            try:
                self._leftover = await _run(self._decompressor.decompress, chunk)
            except (zlib.error, lzma.LZMAError, OSError, EOFError, _zstd().ZstdError) as error:
                raise ValueError(f"the data is not valid for its declared content encoding: {error}") from None
        chunk, self._leftover = self._leftover[:max_bytes], self._leftover[max_bytes:]
        return chunk

    async def send(self, item: bytes) -> None:
        data = await _run(self._compressor.compress, bytes(item))
        if data:
            await self._stream.send(data)

    async def send_eof(self) -> None:
        data = self._compressor.flush()
        if data:
            await self._stream.send(data)
        await self._stream.send_eof()

    async def aclose(self) -> None:
        await self._stream.aclose()
