"""Figures of the router: bytes per second through `jmp router run`, beside the same transfer direct.

    uv run python benchmarks/router.py              # prints a markdown table
    uv run python benchmarks/router.py --scale 0.05 # a quick check

A real router process (`jmp router run --controller-state DIR`), and both ends of each stream in
this process, over TLS trusting the controller's CA, with tokens minted by the state directory's
key as the controller's Dial does:

- throughput: one end sends `256 MiB x scale` in 64 KiB DATA frames, the other receives it;
  MB/s (10**6 bytes per second), best of three. "direct" is the same transfer over a plain gRPC
  stream between the two ends (a RouterService.Stream served in this process, TLS too), so the
  difference is the router's hop;
- token to first byte: from minting the token to the first byte arriving at the other end, both
  ends connecting on new channels (as a client and an exporter do after Dial/Listen); p50 and p99.

On a 2-core machine the router process and this one share the cores: figures are a lower bound.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import anyio
import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "support"))

from jumpstarter.common.tls import TlsIdentity  # noqa: E402
from jumpstarter.testing import Commands  # noqa: E402
from jumpstarter.v1 import router_pb2  # noqa: E402
from jumpstarter_controller.router import mint_stream_token  # noqa: E402
from jumpstarter_controller.state import StateDir  # noqa: E402
from testsupport.router import FRAME, RouterEnd, router_end, start_router  # noqa: E402

MB = 10**6


async def transfer(sender: RouterEnd, receiver: RouterEnd, data: bytes) -> float:
    """Seconds to send `data` from one end to the other."""
    started = time.perf_counter()
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(_send, sender, data)
        received = await receiver.receive_all()
    elapsed = time.perf_counter() - started
    assert len(received) == len(data)
    return elapsed


async def _send(end: RouterEnd, data: bytes) -> None:
    await end.send(data)
    await end.close_sending()


async def through_router(address: str, state: StateDir, data: bytes, rounds: int) -> list[float]:
    times = []
    ca = state.ca_path.read_bytes()
    for _ in range(rounds):
        token = mint_stream_token(state.signing_key(), stream_id=str(uuid.uuid4()), lease="bench")
        async with router_end(address, ca, token) as sender, router_end(address, ca, token) as receiver:
            times.append(await transfer(sender, receiver, data))
    return times


async def direct(state: StateDir, directory: Path, data: bytes, rounds: int) -> list[float]:
    """The same transfer to a RouterService.Stream served here: the receiving end is the server."""
    certificate, key = state.issue_server_certificate(["127.0.0.1"], directory / "direct")
    received: list[int] = []

    async def sink(requests: object, context: grpc.aio.ServicerContext[router_pb2.StreamRequest, bytes]) -> None:
        total = 0
        while (frame := await context.read()) is not grpc.aio.EOF:
            total += len(frame.payload)  # type: ignore[union-attr]
        received.append(total)

    server = grpc.aio.server()
    handler = grpc.stream_stream_rpc_method_handler(sink, request_deserializer=router_pb2.StreamRequest.FromString)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("jumpstarter.v1.RouterService", {"Stream": handler}),)
    )
    port = server.add_secure_port("127.0.0.1:0", TlsIdentity.load(certificate, key).server_credentials())
    await server.start()
    times = []
    try:
        for _ in range(rounds):
            async with router_end(f"127.0.0.1:{port}", state.ca_path.read_bytes(), None) as sender:
                started = time.perf_counter()
                await sender.send(data)
                await sender.call.done_writing()
                await sender.call.code()
                times.append(time.perf_counter() - started)
    finally:
        await server.stop(None)
    assert received == [len(data)] * rounds
    return times


async def first_byte(address: str, state: StateDir, rounds: int) -> list[float]:
    ca = state.ca_path.read_bytes()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        token = mint_stream_token(state.signing_key(), stream_id=str(uuid.uuid4()), lease="bench")
        async with router_end(address, ca, token) as client, router_end(address, ca, token) as exporter:
            await client.send(b"x")
            await exporter.call.read()
            times.append(time.perf_counter() - started)
    return times


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def main(scale: float) -> None:
    size = max(FRAME, int(256 * 1024 * 1024 * scale)) // FRAME * FRAME
    data = os.urandom(size)
    rounds = 3
    latency_rounds = max(10, round(200 * scale))
    with tempfile.TemporaryDirectory() as temporary:
        directory = Path(temporary)
        state = StateDir(directory / "state")
        state.ca(), state.signing_key()
        with Commands(directory, PYTHONPATH=str(ROOT / "tests" / "support")) as commands:
            process, address = start_router(commands, "--controller-state", state.path, "--listen", "127.0.0.1:0")
            routed = await through_router(address, state, data, rounds)
            plain = await direct(state, directory, data, rounds)
            latency = await first_byte(address, state, latency_rounds)
            process.kill()
    print(f"Router figures ({size // (1024 * 1024)} MiB in 64 KiB frames, best of {rounds}; {latency_rounds} streams)")
    print()
    print("| Figure | Value |")
    print("|---|---|")
    print(f"| through the router | {size / min(routed) / MB:.0f} MB/s |")
    print(f"| direct gRPC stream | {size / min(plain) / MB:.0f} MB/s |")
    print(f"| token to first byte, p50 | {statistics.median(latency) * 1000:.1f} ms |")
    print(f"| token to first byte, p99 | {percentile(latency, 0.99) * 1000:.1f} ms |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the transfer size and the iterations")
    anyio.run(main, parser.parse_args().scale)
