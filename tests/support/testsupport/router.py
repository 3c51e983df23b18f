"""Router streams for tests and benchmarks: a `jmp router run` process, and the two ends of a stream.

`start_router` starts ``jmp router run`` through `jumpstarter.testing.Commands` and returns its
address once it prints it; `RouterEnd` is one caller of ``RouterService.Stream`` over TLS
trusting the controller's ``ca.pem`` (the client's or the exporter's side: the router does not
tell them apart), with helpers to send and receive whole byte strings.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc

from jumpstarter.testing import Commands, Process
from jumpstarter.v1 import router_pb2, router_pb2_grpc

DATA = router_pb2.FRAME_TYPE_DATA
GOAWAY = router_pb2.FRAME_TYPE_GOAWAY
PING = router_pb2.FRAME_TYPE_PING
FRAME = 64 * 1024

_SERVING = re.compile(r"router serving on (\S+) with TLS")


def start_router(commands: Commands, *arguments: str | Path) -> tuple[Process, str]:
    """``jmp router run ARGUMENTS``, running; and the address it serves on."""
    process = commands.start("jmp", "router", "run", *arguments)
    process.wait_for(lambda out, err: _SERVING.search(err) is not None)
    match = _SERVING.search(process.output()[1])
    assert match is not None
    return process, match.group(1)


class RouterEnd:
    """One end of a router stream: a `RouterService.Stream` call with a stream token."""

    def __init__(self, call: grpc.aio.StreamStreamCall[router_pb2.StreamRequest, router_pb2.StreamResponse]) -> None:
        self.call = call

    async def send(self, data: bytes, frame: int = FRAME) -> None:
        view = memoryview(data)
        for start in range(0, len(view), frame):
            await self.call.write(router_pb2.StreamRequest(payload=bytes(view[start : start + frame])))

    async def close_sending(self) -> None:
        """Half-close as the original's peers do: a GOAWAY frame, then the gRPC half-close."""
        await self.call.write(router_pb2.StreamRequest(frame_type=GOAWAY))
        await self.call.done_writing()

    async def receive_all(self) -> bytes:
        """The DATA received until a GOAWAY frame or the end of the call."""
        chunks = []
        while True:
            response = await self.call.read()
            if response is grpc.aio.EOF or response.frame_type == GOAWAY:
                return b"".join(chunks)
            if response.frame_type == DATA:
                chunks.append(response.payload)

    async def status(self) -> tuple[grpc.StatusCode, str]:
        return await self.call.code(), await self.call.details()


@asynccontextmanager
async def router_end(address: str, ca: bytes, token: str | None) -> AsyncIterator[RouterEnd]:
    """A stream to the router at `address` (TLS, trusting `ca`), showing `token` (none if None)."""
    async with grpc.aio.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=ca)) as channel:
        stub = router_pb2_grpc.RouterServiceStub(channel)
        metadata = (("authorization", f"Bearer {token}"),) if token is not None else ()
        call = stub.Stream(metadata=metadata)
        try:
            yield RouterEnd(call)
        finally:
            call.cancel()
