"""Client resources: bulk data streamed to and from drivers beside a call."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.streams.stapled import StapledObjectStream

from jumpstarter.client import DriverClient, DriverInvalidArgument
from jumpstarter.common.utils import serve
from jumpstarter.driver import Driver, export

try:
    from compression import zstd  # Python 3.14 and later
except ImportError:
    from backports import zstd

DATA = bytes(range(256)) * 40_000  # about 10 MiB


@dataclass(kw_only=True)
class Flasher(Driver):
    stored: bytes = b""
    handles: list[Any] = field(default_factory=list)

    @classmethod
    def client(cls) -> str:
        return "jumpstarter.client.DriverClient"

    @export
    async def flash(self, image: Any) -> str:
        chunks = []
        async with self.resource(image) as stream:
            async for chunk in stream:
                chunks.append(chunk)
        self.stored = b"".join(chunks)
        return hashlib.sha256(self.stored).hexdigest()

    @export
    async def dump(self, target: Any) -> int:
        async with self.resource(target) as stream:
            for offset in range(0, len(self.stored), 100_000):
                await stream.send(self.stored[offset : offset + 100_000])
        return len(self.stored)

    @export
    async def flash_header(self, image: Any) -> bytes:
        async with self.resource(image) as stream:
            return await stream.receive()

    @export
    def ignore(self, image: Any) -> None:
        self.handles.append(image)

    @export
    async def reuse(self) -> None:
        async with self.resource(self.handles[-1]):
            pass


@pytest.fixture
def driver() -> Flasher:
    return Flasher()


@pytest.fixture
def client(driver: Flasher) -> Iterator[DriverClient]:
    with serve(driver) as client:
        yield client


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_upload_bytes(client: DriverClient, driver: Flasher) -> None:
    with client.resource(DATA) as handle:
        assert client.call("flash", handle) == sha256(DATA)
    assert driver.stored == DATA


def test_upload_a_file_by_path_and_by_object(client: DriverClient, tmp_path: Path) -> None:
    image = tmp_path / "image.bin"
    image.write_bytes(DATA)
    with client.resource(image) as handle:
        assert client.call("flash", handle) == sha256(DATA)
    with client.resource(str(image)) as handle:
        assert client.call("flash", handle) == sha256(DATA)
    with open(image, "rb") as file, client.resource(file) as handle:
        assert client.call("flash", handle) == sha256(DATA)


def test_upload_an_iterable(client: DriverClient) -> None:
    with client.resource(iter([b"ab", b"", b"cd"])) as handle:
        assert client.call("flash", handle) == sha256(b"abcd")
    with client.resource(chunk for chunk in (b"gen", b"erator")) as handle:
        assert client.call("flash", handle) == sha256(b"generator")


def test_upload_an_async_iterable(client: DriverClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"as"
        yield b"ync"

    with client.resource(chunks()) as handle:
        assert client.call("flash", handle) == sha256(b"async")


def test_an_anyio_stream_both_ways(client: DriverClient, driver: Flasher) -> None:
    to_driver_send, to_driver_receive = anyio.create_memory_object_stream[bytes](10)
    from_driver_send, from_driver_receive = anyio.create_memory_object_stream[bytes](10)
    to_driver_send.send_nowait(b"image")
    to_driver_send.close()
    with client.resource(StapledObjectStream(from_driver_send, to_driver_receive)) as handle:
        assert client.call("flash", handle) == sha256(b"image")
    driver.stored = b"stored"
    with client.resource(StapledObjectStream(from_driver_send, to_driver_receive)) as handle:
        client.call("dump", handle)
    assert from_driver_receive.receive_nowait() == b"stored"


def test_download_into_a_file(client: DriverClient, driver: Flasher, tmp_path: Path) -> None:
    driver.stored = DATA
    target = tmp_path / "dump.bin"
    with open(target, "wb") as file, client.resource(file) as handle:
        assert client.call("dump", handle) == len(DATA)
    # Every byte arrived before the resource block ended.
    assert target.read_bytes() == DATA


def test_download_into_memory(client: DriverClient, driver: Flasher) -> None:
    driver.stored = b"firmware"
    buffer = io.BytesIO()
    with client.resource(buffer) as handle:
        client.call("dump", handle)
    assert buffer.getvalue() == b"firmware"


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [("gzip", gzip.compress), ("xz", lzma.compress), ("bz2", bz2.compress), ("zstd", zstd.compress)],
)
def test_compressed_uploads_reach_the_driver_decompressed(client: DriverClient, encoding: str, compress: Any) -> None:
    with client.resource(compress(DATA), content_encoding=encoding) as handle:
        assert client.call("flash", handle) == sha256(DATA)


def test_data_that_does_not_match_its_encoding(client: DriverClient) -> None:
    with (
        pytest.raises(DriverInvalidArgument, match="not valid for its declared content encoding"),
        client.resource(b"plain text", content_encoding="gzip") as handle,
    ):
        client.call("flash", handle)


@pytest.mark.timeout(20)
def test_a_driver_that_reads_part_of_the_data(client: DriverClient) -> None:
    with client.resource(DATA) as handle:
        header = client.call("flash_header", handle)
    assert header and DATA.startswith(header)


@pytest.mark.timeout(20)
def test_an_unused_handle_does_not_hang_the_client(client: DriverClient) -> None:
    with client.resource(io.BytesIO()) as handle:
        client.call("ignore", handle)  # the driver never opens it
    with client.resource(DATA):
        pass  # never passed to any call


def test_a_handle_is_used_once(client: DriverClient) -> None:
    with client.resource(b"x") as handle:
        client.call("ignore", handle)
        with pytest.raises(DriverInvalidArgument, match="is not open on Flasher: a handle is used once"):
            client.call("reuse")


@pytest.mark.timeout(20)
def test_a_handle_only_works_on_its_driver() -> None:
    root = Flasher(children={"other": Flasher()})
    with (
        serve(root) as client,
        client.children["other"].resource(io.BytesIO()) as handle,
        pytest.raises(DriverInvalidArgument, match="is not open on Flasher"),
    ):
        client.call("flash", handle)


@pytest.mark.timeout(20)
def test_a_handle_is_open_only_in_the_session_that_made_it() -> None:
    with (
        serve(Flasher()) as first,
        serve(Flasher()) as second,
        first.resource(io.BytesIO()) as handle,
        pytest.raises(DriverInvalidArgument, match="is not open on Flasher"),
    ):
        second.call("flash", handle)


def test_a_handle_opened_outside_a_session_says_where_it_works() -> None:
    handle = {"kind": "client_stream", "uuid": "8c1f1f36-5d3e-4c0e-9a4e-2f4f9a0b7d11"}
    with pytest.raises(ValueError, match="open only during a call served by an exporter session"):
        anyio.run(Flasher().flash, handle)


def test_a_handle_that_is_not_a_handle(client: DriverClient) -> None:
    with pytest.raises(DriverInvalidArgument, match=r"a resource handle must be the object client.resource\(\) gave"):
        client.call("flash", 42)
    with pytest.raises(DriverInvalidArgument, match="unknown resource handle kind 'ftp'"):
        client.call("flash", {"kind": "ftp"})


def test_unsupported_sources_are_refused(client: DriverClient) -> None:
    with pytest.raises(TypeError, match="cannot use a int as a resource"), client.resource(42):
        pass
    with pytest.raises(TypeError, match="a resource needs a binary file"), client.resource(io.StringIO("text")):
        pass
