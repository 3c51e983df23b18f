"""The connection gate's sockets: real TCP on loopback, a real Unix socket behind it."""

from __future__ import annotations

import socket
from pathlib import Path

import anyio
import pytest

from jumpstarter.exporter.gate import ConnectionGate


@pytest.mark.anyio
async def test_the_gate_sends_without_waiting_for_acks(tmp_path: Path) -> None:
    """Nagle's algorithm is off on the client's connection: a response's small writes leave at once."""
    backend = str(tmp_path / "server.sock")
    async with (
        await anyio.create_unix_listener(backend) as server,
        ConnectionGate("127.0.0.1", 0, backend=backend) as gate,
        await anyio.connect_tcp("127.0.0.1", gate.port) as client,
    ):
        await client.send(b"hello")
        async with await server.accept() as behind:
            assert await behind.receive() == b"hello"  # admitted and connected through
            await behind.send(b"answer")
            assert await client.receive() == b"answer"
            fronts = [front.transport.get_extra_info("socket") for front in gate._fronts if front.transport]
            assert len(fronts) == 1
            assert fronts[0].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
