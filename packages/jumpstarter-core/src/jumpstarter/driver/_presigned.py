"""Presigned HTTP resources: the exporter fetches (GET) or uploads (PUT) the bytes itself.

A client may pass, instead of a stream of its own, a handle naming a URL (typically a
presigned object-store URL), so that a large image goes straight from storage to the
exporter. The transfer runs in a worker thread with the standard library's HTTP client;
the driver sees an ordinary byte stream.
"""

from __future__ import annotations

import asyncio
import http.client
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import anyio
from anyio import EndOfStream
from anyio.abc import ByteStream

from jumpstarter.common.handles import PresignedRequestResource
from jumpstarter.common.tasks import background_tasks
from jumpstarter.streams.channel import ThreadChannel

MAX_REDIRECTS = 10
TIMEOUT_SECONDS = 2 * 60 * 60
CHUNK_SIZE = 1 << 20
_BUFFER_BYTES = 4 << 20
# Headers that must not follow a redirect to another origin: they carry credentials.
_SENSITIVE_PREFIXES = ("authorization", "cookie", "proxy-authorization", "x-amz-", "x-ms-", "x-goog-")
_REDIRECTS = (301, 302, 303, 307, 308)


def redact(url: str) -> str:
    """The URL without its query, which holds the signature of a presigned URL."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(query="[redacted]" if parts.query else ""))


@asynccontextmanager
async def open_presigned(resource: PresignedRequestResource) -> AsyncIterator[ByteStream]:
    loop = asyncio.get_running_loop()
    channel: ThreadChannel[bytes] = ThreadChannel(loop, _BUFFER_BYTES, len)
    async with background_tasks() as tasks:
        if resource.method == "GET":
            tasks.start_soon(_in_thread, _download, resource, channel)
            yield _DownloadStream(channel)
        else:
            upload = _UploadStream(channel)
            tasks.start_soon(_in_thread, _upload, resource, channel, upload)
            yield upload
            await upload.send_eof()
            await upload.finished.wait()
            if upload.error is not None:
                raise upload.error


async def _in_thread(function: Any, *args: Any) -> None:
    await anyio.to_thread.run_sync(function, *args, abandon_on_cancel=True)


def _connect(url: str) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"a presigned resource needs an http or https URL, not {redact(url)}")
    connection_class = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = connection_class(parts.hostname, parts.port, timeout=TIMEOUT_SECONDS)
    # The path and query are sent exactly as given: signatures cover their percent-encoding.
    target = urlunsplit(("", "", parts.path or "/", parts.query, ""))
    return connection, target


def _same_origin(first: str, second: str) -> bool:
    a, b = urlsplit(first), urlsplit(second)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


def _failure(method: str, url: str, response: http.client.HTTPResponse) -> RuntimeError:
    return RuntimeError(f"presigned HTTP {method} of {redact(url)} failed: {response.status} {response.reason}")


def _download(resource: PresignedRequestResource, channel: ThreadChannel[bytes]) -> None:
    """Worker thread: GET the URL, following redirects, into `channel`."""
    url, headers = resource.url, dict(resource.headers)
    try:
        for _ in range(MAX_REDIRECTS + 1):
            connection, target = _connect(url)
            try:
                connection.request("GET", target, headers=headers)
                response = connection.getresponse()
                if response.status in _REDIRECTS:
                    location = response.getheader("Location")
                    if not location:
                        raise RuntimeError(f"presigned HTTP GET of {redact(url)} redirected without a Location")
                    location = urljoin(url, location)
                    if not _same_origin(url, location):
                        headers = {k: v for k, v in headers.items() if not k.lower().startswith(_SENSITIVE_PREFIXES)}
                    url = location
                    continue
                if response.status >= 300:
                    raise _failure("GET", url, response)
                while chunk := response.read(CHUNK_SIZE):
                    channel.put(chunk)
                channel.finish()
                return
            finally:
                connection.close()
        raise RuntimeError(f"presigned HTTP GET of {redact(resource.url)} redirected more than {MAX_REDIRECTS} times")
    except anyio.BrokenResourceError:
        pass  # the driver stopped reading
    except (OSError, http.client.HTTPException) as error:
        channel.finish(ConnectionError(f"presigned HTTP GET of {redact(url)} failed: {error}"))
    except Exception as error:
        channel.finish(error)


def _upload(resource: PresignedRequestResource, channel: ThreadChannel[bytes], stream: _UploadStream) -> None:
    """Worker thread: PUT what the driver writes to `channel`.

    With a Content-Length in the handle's headers (object stores such as S3 require one
    for a presigned PUT), the body is sent as it is; without one, with chunked transfer
    encoding.
    """

    def body() -> Iterator[bytes]:
        while True:
            try:
                yield b"".join(channel.get_batch())
            except EndOfStream:
                return

    connection, target = _connect(resource.url)
    try:
        try:
            chunked = not any(name.lower() == "content-length" for name in resource.headers)
            connection.request("PUT", target, body=body(), headers=resource.headers, encode_chunked=chunked)
        except OSError as error:
            # A server that refuses the upload answers and closes before reading the body:
            # its answer says more than the broken pipe.
            try:
                response = connection.getresponse()
            except (OSError, http.client.HTTPException):
                raise error from None
        else:
            response = connection.getresponse()
        if response.status >= 300:
            stream.error = _failure("PUT", resource.url, response)
    except (OSError, http.client.HTTPException) as error:
        stream.error = ConnectionError(f"presigned HTTP PUT of {redact(resource.url)} failed: {error}")
    finally:
        connection.close()
        channel.abort()
        stream.loop.call_soon_threadsafe(stream.finished.set)


class _DownloadStream(ByteStream):
    def __init__(self, channel: ThreadChannel[bytes]) -> None:
        self._channel = channel

    async def receive(self, max_bytes: int = CHUNK_SIZE) -> bytes:
        return b"".join(await self._channel.aget_batch(1))

    async def send(self, item: bytes) -> None:
        raise anyio.ClosedResourceError("a presigned GET resource is read-only")

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        self._channel.abort()


class _UploadStream(ByteStream):
    def __init__(self, channel: ThreadChannel[bytes]) -> None:
        self._channel = channel
        self.loop = asyncio.get_running_loop()
        self.finished = anyio.Event()
        self.error: Exception | None = None

    async def receive(self, max_bytes: int = CHUNK_SIZE) -> bytes:
        raise EndOfStream  # a PUT resource carries nothing back

    async def send(self, item: bytes) -> None:
        try:
            await self._channel.aput(bytes(item))
        except anyio.BrokenResourceError:
            # The upload stopped early: report why.
            await self.finished.wait()
            raise self.error or anyio.BrokenResourceError("the presigned HTTP PUT ended early") from None

    async def send_eof(self) -> None:
        self._channel.finish()

    async def aclose(self) -> None:
        self._channel.finish()
