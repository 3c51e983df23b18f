"""The ORIGINAL jumpstarter 0.9.0's network drivers and client, as a peer of test_interop.py.

Run with the original's python (its own virtual environment: both projects are imported as
`jumpstarter`). Two modes:

    original_peer.py client      JUMPSTARTER_HOST=<our exporter's socket>: drive its `tcp` and
                                 `udp` drivers with the original's client; print one JSON line
    original_peer.py exporter TCP_HOST TCP_PORT UDP_HOST UDP_PORT
                                 serve the original's TcpNetwork and UdpNetwork as `tcp` and `udp`;
                                 print {"socket": path}, serve until stdin closes

Only the standard library, anyio and the original's packages are imported.
"""

from __future__ import annotations

import json
import socket
import sys

import anyio


def client() -> None:
    from jumpstarter_driver_network.adapters import TcpPortforwardAdapter

    from jumpstarter.utils.env import env

    outcome: dict[str, object] = {}
    with env() as root:
        outcome["class"] = type(root.tcp).__module__ + "." + type(root.tcp).__qualname__
        outcome["address"] = root.tcp.address()
        with (
            TcpPortforwardAdapter(client=root.tcp) as address,
            socket.create_connection(tuple(address[:2]), timeout=20) as sock,
        ):
            sock.sendall(b"through the original's forward")
            sock.shutdown(socket.SHUT_WR)
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
        outcome["forwarded"] = received.decode()
        with root.udp.stream() as udp:
            for datagram in (b"one", b"two", b"three"):
                udp.send(datagram)
            outcome["datagrams"] = [udp.receive().decode() for _ in range(3)]
    print(json.dumps(outcome), flush=True)


async def exporter(tcp_host: str, tcp_port: int, udp_host: str, udp_port: int) -> None:
    from jumpstarter_driver_composite.driver import Composite
    from jumpstarter_driver_network.driver import TcpNetwork, UdpNetwork

    from jumpstarter.common import ExporterStatus
    from jumpstarter.exporter import Session

    root = Composite(
        children={"tcp": TcpNetwork(host=tcp_host, port=tcp_port), "udp": UdpNetwork(host=udp_host, port=udp_port)}
    )
    with Session(root_device=root) as session:
        async with session.serve_unix_async() as path:
            session.update_status(ExporterStatus.LEASE_READY)  # as the original's own serve() does
            print(json.dumps({"socket": str(path)}), flush=True)
            await anyio.to_thread.run_sync(sys.stdin.read)


if __name__ == "__main__":
    if sys.argv[1] == "client":
        client()
    else:
        anyio.run(exporter, sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]))
