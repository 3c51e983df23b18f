"""`jmp router run`: a real router process, two real gRPC callers over TLS trusting the controller's CA.

Tokens are minted with the state directory's signing key, as the controller does in Dial.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from jumpstarter.testing import Commands
from jumpstarter_controller.router import mint_stream_token
from jumpstarter_controller.state import StateDir
from testsupport.router import GOAWAY, PING, RouterEnd, router_end, start_router

SUPPORT = Path(__file__).resolve().parents[3] / "tests" / "support"
PEER = Path(__file__).resolve().with_name("router_peer.py")
WAIT = 1.5  # the routers' --wait-timeout in these tests


@pytest.fixture
def state(tmp_path: Path) -> StateDir:
    made = StateDir(tmp_path / "state")
    made.ca(), made.signing_key()
    return made


@pytest.fixture
def commands(tmp_path: Path) -> Iterator[Commands]:
    with Commands(tmp_path, PYTHONPATH=str(SUPPORT)) as commands:
        yield commands


@pytest.fixture
def router(commands: Commands, state: StateDir) -> Iterator[str]:
    process, address = start_router(
        commands, "--controller-state", state.path, "--listen", "127.0.0.1:0", "--wait-timeout", str(WAIT)
    )
    yield address
    process.process.send_signal(signal.SIGTERM)
    result = process.finish()
    assert result.returncode == 0, result
    assert "Traceback" not in result.stderr, result


def token(state: StateDir, stream_id: str | None = None, **extra: object) -> str:
    return mint_stream_token(state.signing_key(), stream_id=stream_id or str(uuid.uuid4()), lease="lease-1", **extra)  # type: ignore[arg-type]


async def refused(address: str, state: StateDir, token: str | None) -> tuple[grpc.StatusCode, str]:
    async with router_end(address, state.ca_path.read_bytes(), token) as end:
        with anyio.fail_after(10):
            return await end.status()


@pytest.mark.anyio
async def test_relays_both_ways_byte_exact(router: str, state: StateDir) -> None:
    ca, shared = state.ca_path.read_bytes(), token(state)
    big = os.urandom(64 * 1024 * 1024)
    small = os.urandom(300_000)
    async with router_end(router, ca, shared) as client, router_end(router, ca, shared) as exporter:
        received: dict[str, bytes] = {}

        async def side(name: str, end: RouterEnd, data: bytes) -> None:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(lambda: _send_and_close(end, data))
                received[name] = await end.receive_all()

        with anyio.fail_after(60):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(side, "client", client, big)
                tasks.start_soon(side, "exporter", exporter, small)
            assert hashlib.sha256(received["exporter"]).digest() == hashlib.sha256(big).digest()
            assert received["client"] == small
            assert await client.status() == (grpc.StatusCode.OK, "")
            assert await exporter.status() == (grpc.StatusCode.OK, "")


async def _send_and_close(end: RouterEnd, data: bytes) -> None:
    await end.send(data)
    await end.close_sending()


@pytest.mark.anyio
async def test_frames_pass_unchanged_and_half_close_keeps_the_other_way(router: str, state: StateDir) -> None:
    from jumpstarter.v1 import router_pb2

    ca, shared = state.ca_path.read_bytes(), token(state)
    async with router_end(router, ca, shared) as first, router_end(router, ca, shared) as second:
        with anyio.fail_after(20):
            # Every frame type, an empty DATA frame too, and an unknown type: relayed as they are.
            sent = [
                router_pb2.StreamRequest(payload=b"one"),
                router_pb2.StreamRequest(payload=b""),
                router_pb2.StreamRequest(frame_type=PING),
                router_pb2.StreamRequest(payload=b"x", frame_type=42),  # type: ignore[arg-type]
                router_pb2.StreamRequest(frame_type=GOAWAY),
            ]
            for frame in sent:
                await first.call.write(frame)
            await first.call.done_writing()  # first is done sending; second still may
            got = [await second.call.read() for _ in sent]
            assert [(frame.payload, frame.frame_type) for frame in got] == [
                (frame.payload, frame.frame_type) for frame in sent
            ]
            await second.send(b"still flowing after the other side's half-close")
            assert (await first.call.read()).payload == b"still flowing after the other side's half-close"
            await second.close_sending()
            assert await first.receive_all() == b""  # the GOAWAY
            assert await first.call.read() is grpc.aio.EOF
            assert await second.call.read() is grpc.aio.EOF
            assert await first.status() == (grpc.StatusCode.OK, "")
            assert await second.status() == (grpc.StatusCode.OK, "")


@pytest.mark.anyio
async def test_a_bare_half_close_ends_one_direction_only(router: str, state: StateDir) -> None:
    """A half-close without GOAWAY (an EOF only) is not taken for a cancellation: the other way goes on."""
    ca, shared = state.ca_path.read_bytes(), token(state)
    async with router_end(router, ca, shared) as first, router_end(router, ca, shared) as second:
        with anyio.fail_after(20):
            await first.send(b"last words")
            await first.call.done_writing()
            assert (await second.call.read()).payload == b"last words"
            # The router has read first's EOF by now or soon; the stream must stay up for second.
            for index in range(20):
                await second.send(b"reply %d" % index)
                assert (await first.call.read()).payload == b"reply %d" % index
            await second.call.done_writing()
            assert await first.call.read() is grpc.aio.EOF
            assert await second.call.read() is grpc.aio.EOF
            assert await first.status() == (grpc.StatusCode.OK, "")
            assert await second.status() == (grpc.StatusCode.OK, "")


@pytest.mark.anyio
async def test_a_cancelled_call_breaks_the_stream(router: str, state: StateDir) -> None:
    """A caller that cancels its call (EOF to the router's reads, as a half-close) ends the other with UNAVAILABLE."""
    ca, shared = state.ca_path.read_bytes(), token(state)
    async with router_end(router, ca, shared) as first, router_end(router, ca, shared) as second:
        with anyio.fail_after(20):
            await first.send(b"before leaving")
            assert (await second.call.read()).payload == b"before leaving"
            first.call.cancel()
            with pytest.raises(grpc.aio.AioRpcError):
                await second.call.read()
            code, details = await second.status()
            assert code == grpc.StatusCode.UNAVAILABLE
            assert details.startswith("the other end of the stream went away"), details


@pytest.mark.anyio
async def test_a_stream_pairs_two_callers_only(router: str, state: StateDir) -> None:
    ca, shared = state.ca_path.read_bytes(), token(state)
    async with router_end(router, ca, shared) as first, router_end(router, ca, shared) as second:
        await first.send(b"ping")
        with anyio.fail_after(10):
            assert (await second.call.read()).payload == b"ping"
            code, details = await refused(router, state, shared)
        assert code == grpc.StatusCode.UNAUTHENTICATED
        assert (
            details
            == "this stream token was already used by both ends of its stream: dial the exporter again for a new one"
        )
        # The pair is not disturbed by the third caller.
        await second.send(b"pong")
        with anyio.fail_after(10):
            assert (await first.call.read()).payload == b"pong"


@pytest.mark.anyio
async def test_bad_tokens_are_refused(router: str, state: StateDir) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    cases = {
        None: (
            "the router needs a stream token: 'authorization: Bearer <token>' from the controller's Dial or Listen "
            "answer"
        ),
        "not-a-jwt": "the stream token is malformed (Not enough segments)",
        mint_stream_token(other, stream_id="s", lease="l"): (
            "the stream token's signature is bad: it was not signed by this router's controller"
        ),
        token(state, ttl=datetime.timedelta(seconds=-30)): (
            "the stream token has expired: dial the exporter again for a new one"
        ),
    }
    for offered, message in cases.items():
        assert await refused(router, state, offered) == (grpc.StatusCode.UNAUTHENTICATED, message)


@pytest.mark.anyio
async def test_a_lonely_half_is_dropped(router: str, state: StateDir) -> None:
    shared = token(state)
    started = time.monotonic()
    code, details = await refused(router, state, shared)
    waited = time.monotonic() - started
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert details == f"the other end of the stream did not connect within {WAIT:g} s: dial the exporter again"
    assert WAIT <= waited < WAIT + 5
    # Its peer, arriving late, learns at once that nobody waits for it.
    assert await refused(router, state, shared) == (
        grpc.StatusCode.UNAVAILABLE,
        "the other end of this stream stopped waiting before this one came: dial the exporter again",
    )


@pytest.mark.anyio
async def test_a_killed_peer_ends_the_other_side(router: str, state: StateDir, commands: Commands) -> None:
    shared = token(state)
    peer = commands.start(sys.executable, PEER, router, state.ca_path, STREAM_TOKEN=shared)
    # Joined once the peer is there: on a loaded machine its start alone may take longer than WAIT.
    await anyio.to_thread.run_sync(lambda: peer.wait_for(lambda out, _: "sent" in out))
    async with router_end(router, state.ca_path.read_bytes(), shared) as end:
        with anyio.fail_after(15):
            assert (await end.call.read()).payload == b"hello from the peer"
        peer.process.send_signal(signal.SIGKILL)
        started = time.monotonic()
        with anyio.fail_after(10):
            code, details = await end.status()
        assert time.monotonic() - started < 5
        assert code == grpc.StatusCode.UNAVAILABLE
        assert details.startswith("the other end of the stream went away")


@pytest.mark.anyio
async def test_sigterm_stops_the_router_and_its_streams(commands: Commands, state: StateDir) -> None:
    process, address = start_router(commands, "--controller-state", state.path, "--listen", "127.0.0.1:0")
    ca, shared = state.ca_path.read_bytes(), token(state)
    async with router_end(address, ca, shared) as first, router_end(address, ca, shared) as second:
        await first.send(b"x")
        with anyio.fail_after(10):
            assert (await second.call.read()).payload == b"x"
        process.process.send_signal(signal.SIGTERM)
        with anyio.fail_after(10):
            code, _ = await first.status()
        assert code != grpc.StatusCode.OK
    result = process.finish(timeout=10)
    assert result.returncode == 0, result
    assert "jmp: router stopping (SIGTERM)" in result.stderr
    assert "jmp: router stopped after 1 streams" in result.stderr


@pytest.mark.anyio
async def test_explicit_files_instead_of_the_state_directory(
    commands: Commands, state: StateDir, tmp_path: Path
) -> None:
    certificate, key = state.issue_server_certificate(["127.0.0.1"], tmp_path / "tls")
    process, address = start_router(
        commands,
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        certificate,
        "--tls-key",
        key,
        "--verify-key",
        state.verify_key_path,
    )
    ca, shared = state.ca_path.read_bytes(), token(state)
    async with router_end(address, ca, shared) as first, router_end(address, ca, shared) as second:
        await first.send(b"through explicit files")
        with anyio.fail_after(10):
            assert (await second.call.read()).payload == b"through explicit files"
    process.kill()


def test_bad_command_lines(commands: Commands, state: StateDir, tmp_path: Path) -> None:
    public = state.verify_key_path
    private_pem = state.signing_key().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "wide.key").write_bytes(private_pem)
    (tmp_path / "wide.key").chmod(0o644)
    cases = [
        (["--listen", "127.0.0.1:0"], 2, "the router needs the controller's state directory (--controller-state DIR)"),
        (["--listen", "nowhere", "--controller-state", state.path], 2, "--listen takes HOST:PORT"),
        (
            ["--listen", "127.0.0.1:0", "--controller-state", tmp_path / "missing"],
            2,
            "is not a controller's state directory (no such directory)",
        ),
        (
            ["--listen", "127.0.0.1:0", "--controller-state", state.path, "--verify-key", public],
            2,
            "--controller-state and --verify-key are alternatives",
        ),
        (
            [
                "--listen",
                "127.0.0.1:0",
                "--tls-cert",
                state.ca_path,
                "--tls-key",
                tmp_path / "wide.key",
                "--verify-key",
                public,
            ],
            2,
            "can be read by other users",
        ),
        (
            [
                "--listen",
                "127.0.0.1:0",
                "--tls-cert",
                tmp_path / "none.pem",
                "--tls-key",
                state.ca_key_path,
                "--verify-key",
                public,
            ],
            2,
            "none.pem: No such file or directory",
        ),
        (
            [
                "--listen",
                "127.0.0.1:0",
                "--tls-cert",
                state.ca_path,
                "--tls-key",
                state.ca_key_path,
                "--verify-key",
                state.signing_key_path,
            ],
            2,
            "holds a private key: give the public key",
        ),
    ]
    for arguments, code, message in cases:
        result = commands.run("jmp", "router", "run", *arguments)
        assert result.returncode == code, (arguments, result)
        assert message in result.stderr, (arguments, result)
        assert len(result.stderr.splitlines()) == 1, result


def test_a_port_in_use(commands: Commands, state: StateDir) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = commands.run("jmp", "router", "run", "--controller-state", state.path, "--listen", f"127.0.0.1:{port}")
    assert result.returncode == 1, result
    assert f"127.0.0.1:{port} is in use" in result.stderr
    assert "(--listen 127.0.0.1:0 picks a free one)" in result.stderr


def test_the_listener_bounds_connections_per_peer(router: str) -> None:
    # The exporter's gate (64 connections per peer by default): the next one is closed at once,
    # before any TLS handshake, and the ones admitted stay open.
    import socket

    host, _, port = router.rpartition(":")
    admitted = [socket.create_connection((host, int(port)), timeout=10) for _ in range(64)]
    try:
        with socket.create_connection((host, int(port)), timeout=10) as refused:
            assert refused.recv(1) == b""
        admitted[0].settimeout(0.2)
        with pytest.raises(TimeoutError):
            admitted[0].recv(1)  # still open: the server waits for its handshake
    finally:
        for connection in admitted:
            connection.close()
