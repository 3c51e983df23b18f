"""Copying between byte streams, with half-close."""

from __future__ import annotations

from typing import Any

import anyio
from anyio import EndOfStream


async def copy_stream(source: Any, sink: Any) -> None:
    """Copy chunks from `source` to `sink` until `source` ends, then half-close `sink`.

    Works with anyio byte streams and object streams of bytes. Errors propagate.
    """
    while True:
        try:
            chunk = await source.receive()
        except EndOfStream:
            break
        await sink.send(chunk)
    await sink.send_eof()


async def splice(a: Any, b: Any) -> None:
    """Copy both ways between `a` and `b` until both directions have ended.

    Each direction ends on its own (a half-close reaches the other side as end of stream);
    an error in either direction cancels the other and propagates.
    """
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(copy_stream, a, b)
        tasks.start_soon(copy_stream, b, a)
