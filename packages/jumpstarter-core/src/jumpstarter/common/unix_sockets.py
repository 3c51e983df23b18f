"""anyio's Unix socket streams, opened on a loop that keeps their one harmless error quiet.

A receive on them, cancelled in the loop iteration its data arrives, leaves asyncio to report an
InvalidStateError that means nothing (see jumpstarter.common.loops). Our own loops drop it; these
functions set the same guard on the running loop first, since a library's tunnel or forward runs
on the caller's loop (a test runner's fails the test on it). Other backends have no such error.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import anyio
from anyio.abc import SocketListener, SocketStream

from jumpstarter.common.loops import quiet_cancelled_wakeups

__all__ = ["connect_unix", "create_unix_listener"]


async def connect_unix(path: str | Path) -> SocketStream:
    """`anyio.connect_unix`, on a guarded loop."""
    _guard_running_loop()
    return await anyio.connect_unix(path)


async def create_unix_listener(path: str | Path) -> SocketListener:
    """`anyio.create_unix_listener`, on a guarded loop (its connections run on it too)."""
    _guard_running_loop()
    return await anyio.create_unix_listener(path)


def _guard_running_loop() -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not asyncio (trio)
        return
    quiet_cancelled_wakeups(loop)
