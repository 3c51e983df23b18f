"""Resource names (``namespaces/{ns}/leases/{name}``), object names, UUIDv7 lease names and times."""

from __future__ import annotations

import os
import re
import time
import uuid

__all__ = ["BadName", "check_name", "parse_resource", "resource", "uuid7"]

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class BadName(ValueError):
    """A malformed resource or object name."""


def check_name(name: str, what: str) -> str:
    if not _NAME.match(name):
        shown = name if len(name) <= 80 else name[:77] + "..."
        raise BadName(
            f"invalid {what} name {shown!r}: use 1-63 lowercase letters, digits and '-', starting and ending "
            "with a letter or digit"
        )
    return name


def parse_resource(text: str, kind: str | None) -> tuple[str, str]:
    """(namespace, name) of ``namespaces/{ns}/{kind}/{name}``; with kind None, (namespace, "") of a parent."""
    parts = text.split("/")
    if kind is None:
        if len(parts) != 2 or parts[0] != "namespaces":
            raise BadName(f"invalid parent {text!r}: expected namespaces/NAMESPACE")
        return check_name(parts[1], "namespace"), ""
    if len(parts) != 4 or parts[0] != "namespaces" or parts[2] != kind:
        raise BadName(f"invalid name {text!r}: expected namespaces/NAMESPACE/{kind}/NAME")
    return check_name(parts[1], "namespace"), check_name(parts[3], kind.rstrip("s"))


def resource(namespace: str, kind: str, name: str) -> str:
    return f"namespaces/{namespace}/{kind}/{name}"


def uuid7() -> str:
    """A UUIDv7 (RFC 9562): 48 bits of milliseconds, then random bits; sorts by creation time."""
    milliseconds = time.time_ns() // 1_000_000
    value = (milliseconds & ((1 << 48) - 1)) << 80 | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # variant 10
    return str(uuid.UUID(int=value))
