"""Port-forward adapters under the original jumpstarter's names, for code written against it.

    from jumpstarter_driver_network.adapters import TcpPortforwardAdapter

    with TcpPortforwardAdapter(client=client) as (host, port):
        ...

They are the client's `forward_tcp()` and `forward_unix()`, called the original's way.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from os import PathLike
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jumpstarter_driver_network.client import NetworkClient


def TcpPortforwardAdapter(
    *, client: NetworkClient, method: str = "connect", local_host: str = "127.0.0.1", local_port: int = 0
) -> AbstractContextManager[tuple[str, int]]:
    """Listen on `local_host`:`local_port`; each connection opens the `method` stream of `client`."""
    return client.forward_tcp(local_port, local_host, method=method)


def UnixPortforwardAdapter(
    *, client: NetworkClient, method: str = "connect", path: str | PathLike[str] | None = None
) -> AbstractContextManager[str]:
    """Listen on the Unix socket `path` (default: a temporary one); each connection opens a stream."""
    return client.forward_unix(None if path is None else str(path), method=method)


__all__ = ["TcpPortforwardAdapter", "UnixPortforwardAdapter"]
