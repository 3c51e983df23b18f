"""Handles on the wire: the JSON that names a byte stream to open, and resource handles.

A client opens `RouterService.Stream` with one metadata entry, ``request``, a JSON object
whose ``kind`` says what to open:

- ``{"kind": "driver", "uuid": ..., "method": ...}``: the `@exportstream` method of a driver;
- ``{"kind": "resource", "uuid": ..., "x_jmp_content_encoding": ...}``: a channel for bulk
  data; the session answers with a resource handle in its ``resource`` initial metadata, and
  the client passes that handle as an argument of a driver call;
- ``{"kind": "bulk_upload", "uuid": ..., "size": ...}`` and ``{"kind": "bulk_download",
  "uuid": ...}``: the bytes of a large value of a call (a BulkValue, whose uuid these name),
  between peers that advertise ``bulk-values`` (see `jumpstarter.common.wire`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

REQUEST_METADATA_KEY = "request"
RESOURCE_METADATA_KEY = "resource"
ACCEPT_ENCODING_METADATA_KEY = "x_jmp_accept_encoding"
# A client that sends this (value "1") gets a PING frame once its end of stream reached the driver.
EOF_ACK_METADATA_KEY = "jumpstarter-eof-ack"

CONTENT_ENCODINGS = ("gzip", "xz", "bz2", "zstd")


@dataclass(frozen=True)
class DriverStreamRequest:
    uuid: UUID | str
    method: str

    def to_json(self) -> str:
        return json.dumps({"kind": "driver", "uuid": str(self.uuid), "method": self.method}, separators=(",", ":"))


@dataclass(frozen=True)
class ResourceStreamRequest:
    uuid: UUID | str
    content_encoding: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {"kind": "resource", "uuid": str(self.uuid), "x_jmp_content_encoding": self.content_encoding},
            separators=(",", ":"),
        )


@dataclass(frozen=True)
class BulkUploadRequest:
    """The client sends the `size` bytes of the call argument `uuid`."""

    uuid: UUID | str
    size: int

    def to_json(self) -> str:
        return json.dumps({"kind": "bulk_upload", "uuid": str(self.uuid), "size": self.size}, separators=(",", ":"))


@dataclass(frozen=True)
class BulkDownloadRequest:
    """The exporter sends the bytes of the call result `uuid`."""

    uuid: UUID | str

    def to_json(self) -> str:
        return json.dumps({"kind": "bulk_download", "uuid": str(self.uuid)}, separators=(",", ":"))


StreamRequest = DriverStreamRequest | ResourceStreamRequest | BulkUploadRequest | BulkDownloadRequest


def parse_stream_request(text: str | None) -> StreamRequest:
    """Parse the ``request`` metadata; raise ValueError naming what is wrong."""
    if text is None:
        raise ValueError("missing 'request' metadata: say which stream to open")
    try:
        data = json.loads(text)
    except ValueError as error:
        raise ValueError(f"the 'request' metadata is not JSON: {error}") from None
    if not isinstance(data, dict):
        raise ValueError("the 'request' metadata must be a JSON object")
    uuid = _parse_uuid(data.get("uuid"), "request")
    match data.get("kind"):
        case "driver":
            method = data.get("method")
            if not isinstance(method, str):
                raise ValueError("a driver stream request needs a 'method' string")
            return DriverStreamRequest(uuid=uuid, method=method)
        case "resource":
            return ResourceStreamRequest(
                uuid=uuid, content_encoding=_parse_encoding(data.get("x_jmp_content_encoding"))
            )
        case "bulk_upload":
            size = data.get("size")
            if type(size) is not int or size < 0:
                raise ValueError("a bulk upload request needs a 'size': the number of bytes it sends")
            return BulkUploadRequest(uuid=uuid, size=size)
        case "bulk_download":
            return BulkDownloadRequest(uuid=uuid)
        case kind:
            raise ValueError(
                f"unknown stream kind {kind!r} in the 'request' metadata "
                "(expected 'driver', 'resource', 'bulk_upload' or 'bulk_download')"
            )


@dataclass(frozen=True)
class ClientStreamResource:
    """Handle of bytes a client streams over a resource channel."""

    uuid: UUID
    content_encoding: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "client_stream", "uuid": str(self.uuid), "x_jmp_content_encoding": self.content_encoding}


@dataclass(frozen=True)
class PresignedRequestResource:
    """Handle of bytes the exporter fetches (GET) or uploads (PUT) over HTTP itself."""

    url: str
    method: str
    headers: dict[str, str]


def is_client_stream_handle(value: Any) -> bool:
    """Whether a call argument looks like the handle of a client resource (checked further when opened)."""
    return type(value) is dict and value.get("kind") == "client_stream"


def parse_resource_handle(handle: Any) -> ClientStreamResource | PresignedRequestResource:
    """Parse a resource handle received as a call argument (a dict, or its JSON text)."""
    if isinstance(handle, (str, bytes)):
        try:
            handle = json.loads(handle)
        except ValueError:
            raise ValueError("a resource handle must be the object client.resource() gave, not text") from None
    if not isinstance(handle, dict):
        raise ValueError(f"a resource handle must be the object client.resource() gave, not {type(handle).__name__}")
    match handle.get("kind"):
        case "client_stream":
            return ClientStreamResource(
                uuid=_parse_uuid(handle.get("uuid"), "resource handle"),
                content_encoding=_parse_encoding(handle.get("x_jmp_content_encoding")),
            )
        case "presigned_request":
            url, method, headers = handle.get("url"), handle.get("method"), handle.get("headers") or {}
            if not isinstance(url, str) or method not in ("GET", "PUT") or not isinstance(headers, dict):
                raise ValueError("a presigned resource handle needs a 'url', a 'method' (GET or PUT) and 'headers'")
            return PresignedRequestResource(
                url=url, method=method, headers={str(k): str(v) for k, v in headers.items()}
            )
        case kind:
            raise ValueError(f"unknown resource handle kind {kind!r} (expected 'client_stream' or 'presigned_request')")


def _parse_uuid(value: Any, where: str) -> UUID:
    try:
        return UUID(str(value))
    except ValueError:
        raise ValueError(f"the {where} has no valid 'uuid': {value!r}") from None


def _parse_encoding(value: Any) -> str | None:
    if value is None:
        return None
    if value in CONTENT_ENCODINGS:
        return str(value)
    raise ValueError(f"unknown content encoding {value!r} (expected one of {', '.join(CONTENT_ENCODINGS)} or null)")
