"""Interoperability with the original jumpstarter 0.9.0: its client with our drivers, our client with its drivers.

The original runs in its own virtual environment (scripts/upstream_venv.py, created once;
the tests skip when the package index cannot be reached to create it), as a separate
process running original_peer.py.
"""

from __future__ import annotations

import json
import selectors
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from jumpstarter_driver_network.client import MessageDatagramStream, NetworkClient
from jumpstarter_driver_network.driver import TcpNetwork, UdpNetwork

from jumpstarter.client import connect
from jumpstarter.driver import Composite
from jumpstarter.testing import serve_socket
from testsupport.network import UdpPeer, recv_all

pytestmark = pytest.mark.interop

ROOT = Path(__file__).resolve().parents[3]
PEER = Path(__file__).resolve().parent / "original_peer.py"
TIMEOUT = 60


def test_the_original_client_drives_our_drivers(
    upstream_python: Path, upstream_env: dict[str, str], tcp_echo: tuple[str, int], udp_echo: UdpPeer
) -> None:
    root = Composite(
        children={
            "tcp": TcpNetwork(host=tcp_echo[0], port=tcp_echo[1]),
            "udp": UdpNetwork(host=udp_echo.address[0], port=udp_echo.address[1]),
        }
    )
    with serve_socket(root) as path:
        result = subprocess.run(
            [str(upstream_python), str(PEER), "client"],
            env={**upstream_env, "JUMPSTARTER_HOST": path, "JMP_DRIVERS_ALLOW": "UNSAFE"},
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome == {
        "class": "jumpstarter_driver_network.client.NetworkClient",
        "address": f"tcp://{tcp_echo[0]}:{tcp_echo[1]}",
        # The original's port forward, through our exporter and driver, half-close included.
        "forwarded": "through the original's forward<bye>",
        # One stream message per datagram, as the original sends them.
        "datagrams": ["one", "two", "three"],
    }
    assert udp_echo.received == [b"one", b"two", b"three"]


@pytest.fixture
def original_exporter(
    upstream_python: Path, upstream_env: dict[str, str], tcp_echo: tuple[str, int], udp_echo: UdpPeer
) -> Iterator[str]:
    """The original's exporter serving its TcpNetwork (to tcp_echo) and UdpNetwork (to udp_echo); yields its socket."""
    arguments = [tcp_echo[0], str(tcp_echo[1]), udp_echo.address[0], str(udp_echo.address[1])]
    process = subprocess.Popen(
        [str(upstream_python), str(PEER), "exporter", *arguments],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=upstream_env,
    )
    try:
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            ready = selector.select(TIMEOUT)
        line = process.stdout.readline() if ready else ""
        assert line, f"the original's exporter did not start (exit code {process.poll()})"
        yield json.loads(line)["socket"]
    finally:
        if process.stdin is not None:
            process.stdin.close()  # asks it to stop
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_our_client_drives_the_original_drivers(
    original_exporter: str, tcp_echo: tuple[str, int], udp_echo: UdpPeer
) -> None:
    import socket

    with connect(original_exporter) as root:
        tcp, udp = root.tcp, root.udp
        assert isinstance(tcp, NetworkClient) and isinstance(udp, NetworkClient)
        assert tcp.address() == f"tcp://{tcp_echo[0]}:{tcp_echo[1]}"
        with tcp.forward_tcp() as address, socket.create_connection(address, timeout=20) as sock:
            sock.sendall(b"through our forward")
            sock.shutdown(socket.SHUT_WR)
            assert recv_all(sock) == b"through our forward<bye>"
        # The original's UdpNetwork has no `datagrams` stream: one message per datagram on `connect`.
        with udp.datagrams() as datagrams:
            assert isinstance(datagrams._stream, MessageDatagramStream)
            for datagram in (b"one", b"two"):
                datagrams.send(datagram)
                assert datagrams.receive(timeout=10) == datagram
            with pytest.raises(ValueError, match="empty datagram"):
                datagrams.send(b"")
    assert udp_echo.received == [b"one", b"two"]
