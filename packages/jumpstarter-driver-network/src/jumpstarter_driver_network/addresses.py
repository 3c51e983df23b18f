"""How network addresses are written: ``host:port`` with IPv6 in brackets, and ``scheme://`` URLs.

Both sides use this module (the drivers to format `address()`, the client to parse it and
to print what a forward listens on), so it needs nothing but the standard library.
"""

from __future__ import annotations

import ipaddress


def join_host_port(host: str, port: int | str | None) -> str:
    """``host:port``; an IPv6 address goes in brackets (``[::1]:22``) so that its colons stay apart."""
    shown = f"[{host}]" if ":" in host else host
    return shown if port is None else f"{shown}:{port}"


def unbracket(host: str) -> str:
    """A host as written in a configuration, without the brackets of ``[::1]``, and checked not empty."""
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise ValueError("host must name the target: a host name or an IP address")
    return host


def is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def split_address(address: str) -> tuple[str, str, str | None]:
    """(scheme, host or path, port) of an address as `address()` returns it.

    ``tcp://[::1]:22`` gives ``("tcp", "::1", "22")``; ``unix:///run/x.sock`` gives
    ``("unix", "/run/x.sock", None)``; an address without a scheme is taken as TCP, and a
    URL of another scheme (``ws://host:port/path``) keeps its host and port.
    """
    scheme, separator, rest = address.partition("://")
    if not separator:
        scheme, rest = "tcp", address
    if scheme == "unix":
        return scheme, rest, None
    rest = rest.split("/", 1)[0]  # a URL's path is not part of its host and port
    if rest.startswith("[") and "]" in rest:
        host, _, port = rest[1:].partition("]")
        return scheme, host, port.removeprefix(":") or None
    host, separator, port = rest.rpartition(":")
    return (scheme, host, port) if separator else (scheme, rest, None)
