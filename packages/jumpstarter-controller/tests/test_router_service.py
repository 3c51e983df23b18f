"""`add_router_service` on a server of the caller's (as the controller does on its own port), and the counters."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import grpc
import pytest

from jumpstarter.common.tls import TlsIdentity
from jumpstarter_controller.router import Router, add_router_service, mint_stream_token
from jumpstarter_controller.state import StateDir
from testsupport.router import router_end


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[StateDir, Router, str]]:
    state = StateDir(tmp_path / "state")
    certificate, key = state.issue_server_certificate(["127.0.0.1"], tmp_path / "tls")
    router = Router(state.verify_key(), wait_timeout=5)
    server = grpc.aio.server()
    add_router_service(server, router)
    port = server.add_secure_port("127.0.0.1:0", TlsIdentity.load(certificate, key).server_credentials())
    await server.start()
    try:
        yield state, router, f"127.0.0.1:{port}"
    finally:
        await server.stop(grace=None)
        router.close()


async def wait_until(condition: Callable[[], bool]) -> None:
    # The counters are plain attributes (read by metrics), with no event to wait on: polled, bounded.
    with anyio.fail_after(10):
        while not condition():  # noqa: ASYNC110
            await anyio.sleep(0.01)


@pytest.mark.anyio
async def test_counters(served: tuple[StateDir, Router, str]) -> None:
    state, router, address = served
    ca = state.ca_path.read_bytes()
    shared = mint_stream_token(state.signing_key(), stream_id=str(uuid.uuid4()), lease="l")
    assert (router.active_pairs, router.waiting_halves, router.total_pairs, router.load) == (0, 0, 0, 0)
    async with router_end(address, ca, shared) as first:
        await first.send(b"abc")  # sent while waiting: held back by flow control, delivered once paired
        await wait_until(lambda: router.waiting_halves == 1)
        assert router.load == 1
        async with router_end(address, ca, shared) as second:
            with anyio.fail_after(10):
                assert (await second.call.read()).payload == b"abc"
            await second.send(b"defgh")
            with anyio.fail_after(10):
                assert (await first.call.read()).payload == b"defgh"
            assert (router.active_pairs, router.waiting_halves, router.total_pairs) == (1, 0, 1)
            # Frame bytes: the payload and its field's tag and length.
            assert (router.bytes_from_first, router.bytes_from_second) == (5, 7)
            await first.close_sending()
            await second.close_sending()
            with anyio.fail_after(10):
                assert await first.receive_all() == b""
                assert (await first.status())[0] == grpc.StatusCode.OK
        await wait_until(lambda: router.active_pairs == 0)
    assert (router.total_pairs, router.refused) == (1, 0)
    async with router_end(address, ca, "nonsense") as refused:
        with anyio.fail_after(10):
            assert (await refused.status())[0] == grpc.StatusCode.UNAUTHENTICATED
    assert router.refused == 1
