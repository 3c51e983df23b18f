"""Copying a byte stream into a router stream: a real Unix socket, real gRPC on another."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
import grpc
import pytest

from jumpstarter.streams.copy import copy_stream
from jumpstarter.streams.frames import FrameStream
from jumpstarter.v1 import router_pb2

STREAM = "/jumpstarter.v1.RouterService/Stream"


@pytest.mark.anyio
async def test_what_a_socket_holds_goes_in_one_frame(tmp_path: Path) -> None:
    """A 64 KiB gRPC message is a few bytes more on its connection: a tunnel must not cut it in two frames."""
    frames: list[bytes] = []

    async def record(requests: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        while (frame := await context.read()) is not grpc.aio.EOF and frame.frame_type == router_pb2.FRAME_TYPE_DATA:
            frames.append(frame.payload)

    handler = grpc.stream_stream_rpc_method_handler(record, request_deserializer=router_pb2.StreamRequest.FromString)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("jumpstarter.v1.RouterService", {"Stream": handler}),)
    )
    server.add_insecure_port(f"unix:{tmp_path / 'grpc.sock'}")
    await server.start()
    data = os.urandom(64 * 1024 + 41)
    try:
        async with (
            await anyio.create_unix_listener(tmp_path / "bytes.sock") as listener,
            await anyio.connect_unix(tmp_path / "bytes.sock") as writer,
        ):
            await writer.send(data)  # all in the socket before the copy reads any of it
            await writer.send_eof()
            async with (
                await listener.accept() as reader,
                grpc.aio.insecure_channel(f"unix:{tmp_path / 'grpc.sock'}") as channel,
            ):
                call = channel.stream_stream(STREAM, request_serializer=router_pb2.StreamRequest.SerializeToString)()
                await copy_stream(reader, FrameStream(call, client_side=True))
                assert await call.code() == grpc.StatusCode.OK
    finally:
        await server.stop(None)
    assert [len(frame) for frame in frames] == [len(data)]
    assert frames[0] == data
