"""Presigned HTTP resources: the exporter fetches or uploads the bytes itself, from a real HTTP server."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from jumpstarter.client import DriverClient, DriverConnectionError, DriverError
from jumpstarter.common.utils import serve
from jumpstarter.driver import Driver, export

DATA = bytes(range(256)) * 20_000


class Storage(ThreadingHTTPServer):
    """An object store on loopback that records what it was sent."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.uploaded = b""

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Storage

    def log_message(self, *args: Any) -> None:  # keep the test output clean
        pass

    def _record(self) -> None:
        self.server.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))

    def do_GET(self) -> None:
        self._record()
        path = self.path.split("?")[0]
        if path == "/image.bin":
            self.send_response(200)
            self.send_header("Content-Length", str(len(DATA)))
            self.end_headers()
            self.wfile.write(DATA)
        elif path == "/same-origin":
            self._redirect("/image.bin?X-Amz-Signature=abc%2Fdef")
        elif path == "/other-origin":
            self._redirect(f"http://localhost:{self.server.server_address[1]}/image.bin")
        elif path == "/loop":
            self._redirect("/loop")
        else:
            self.send_error(404)

    def do_PUT(self) -> None:
        self._record()
        if self.path.startswith("/denied"):
            self.send_error(403)
            return
        if "Content-Length" in self.headers:
            self.server.uploaded = self.rfile.read(int(self.headers["Content-Length"]))
        else:
            chunks = []
            while True:  # chunked transfer encoding
                size = int(self.rfile.readline().strip(), 16)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
                if size == 0:
                    break
            self.server.uploaded = b"".join(chunks)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def storage() -> Iterator[Storage]:
    server = Storage()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="storage")
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@dataclass(kw_only=True)
class Flasher(Driver):
    @classmethod
    def client(cls) -> str:
        return "jumpstarter.client.DriverClient"

    @export
    async def flash(self, image: Any) -> str:
        digest = hashlib.sha256()
        async with self.resource(image) as stream:
            async for chunk in stream:
                digest.update(chunk)
        return digest.hexdigest()

    @export
    async def dump(self, target: Any, size: int) -> None:
        async with self.resource(target) as stream:
            for offset in range(0, size, 100_000):
                await stream.send(DATA[offset : min(offset + 100_000, size)])


@pytest.fixture
def client() -> Iterator[DriverClient]:
    with serve(Flasher()) as client:
        yield client


def handle(url: str, method: str = "GET", **headers: str) -> dict[str, Any]:
    return {"kind": "presigned_request", "url": url, "method": method, "headers": headers}


def test_get_streams_the_body_to_the_driver(client: DriverClient, storage: Storage) -> None:
    url = f"{storage.base}/image.bin?X-Amz-Signature=s3cr3t"
    assert client.call("flash", handle(url, Authorization="Bearer t")) == hashlib.sha256(DATA).hexdigest()
    method, path, headers = storage.requests[0]
    assert (method, path, headers["authorization"]) == ("GET", "/image.bin?X-Amz-Signature=s3cr3t", "Bearer t")


def test_redirects_keep_percent_encoding_and_credentials_on_the_same_origin(
    client: DriverClient, storage: Storage
) -> None:
    assert client.call("flash", handle(f"{storage.base}/same-origin", Authorization="Bearer t")) == (
        hashlib.sha256(DATA).hexdigest()
    )
    _, (_, path, second) = storage.requests
    assert path == "/image.bin?X-Amz-Signature=abc%2Fdef"
    assert second["authorization"] == "Bearer t"


def test_credentials_do_not_follow_a_redirect_to_another_origin(client: DriverClient, storage: Storage) -> None:
    client.call("flash", handle(f"{storage.base}/other-origin", Authorization="Bearer t", **{"X-Amz-Date": "now"}))
    (_, _, first), (_, _, second) = storage.requests
    assert first["authorization"] == "Bearer t" and first["x-amz-date"] == "now"
    assert "authorization" not in second and "x-amz-date" not in second


def test_http_errors_name_the_url_without_its_signature(client: DriverClient, storage: Storage) -> None:
    with pytest.raises(DriverError) as raised:
        client.call("flash", handle(f"{storage.base}/missing?X-Amz-Signature=s3cr3t"))
    assert "presigned HTTP GET of http://127.0.0.1" in str(raised.value)
    assert "404 Not Found" in str(raised.value)
    assert "s3cr3t" not in str(raised.value)


def test_endless_redirects_are_cut(client: DriverClient, storage: Storage) -> None:
    with pytest.raises(DriverError, match="redirected more than 10 times"):
        client.call("flash", handle(f"{storage.base}/loop"))


def test_an_unreachable_server(client: DriverClient, storage: Storage) -> None:
    url = storage.base + "/image.bin"
    storage.shutdown()
    storage.server_close()
    with pytest.raises(DriverConnectionError, match=r"presigned HTTP GET of http://127\.0\.0\.1"):
        client.call("flash", handle(url))


def test_put_uploads_what_the_driver_writes(client: DriverClient, storage: Storage) -> None:
    target = handle(f"{storage.base}/upload?sig=1", "PUT", **{"Content-Type": "application/octet-stream"})
    client.call("dump", target, len(DATA))
    assert storage.uploaded == DATA
    method, _, headers = storage.requests[0]
    assert method == "PUT" and headers["transfer-encoding"] == "chunked"


def test_put_with_a_known_length_is_not_chunked(client: DriverClient, storage: Storage) -> None:
    # Object stores want the length of a presigned PUT up front.
    target = handle(f"{storage.base}/upload?sig=1", "PUT", **{"Content-Length": str(300_000)})
    client.call("dump", target, 300_000)
    assert storage.uploaded == DATA[:300_000]
    _, _, headers = storage.requests[0]
    assert "transfer-encoding" not in headers and headers["content-length"] == "300000"


def test_a_refused_put_fails_the_call(client: DriverClient, storage: Storage) -> None:
    with pytest.raises(DriverError, match=r"presigned HTTP PUT of .* failed: 403"):
        client.call("dump", handle(f"{storage.base}/denied", "PUT"), 300_000)


def test_only_http_urls(client: DriverClient) -> None:
    with pytest.raises(DriverError, match="needs an http or https URL"):
        client.call("flash", handle("file:///etc/passwd"))
