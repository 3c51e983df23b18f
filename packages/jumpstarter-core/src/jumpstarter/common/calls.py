"""`cancellable`: await a gRPC call's response inside anyio's cancel scopes."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import anyio

__all__ = ["cancellable"]


async def cancellable(call: Any) -> Any:
    """Await a gRPC call's response; cancelling the awaiting task cancels the call.

    gRPC answers the cancellation of a task awaiting a unary call with a CancelledError of its
    own, which anyio does not take for the one its cancel scope sent (a `move_on_after` around a
    call would let it through, and a task group would take it for a cancelled child). Then the
    task waits for its scope's own cancellation, which anyio delivers again; nothing is added to
    a call that is not cancelled. (Reading a stream keeps anyio's CancelledError: only unary
    calls need this.)
    """
    try:
        return await call
    except asyncio.CancelledError:
        if anyio.current_effective_deadline() == -math.inf:  # an anyio scope is cancelled
            await anyio.sleep_forever()
        raise
