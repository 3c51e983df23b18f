"""gRPC calls on anyio: `cancellable` awaits a response inside cancel scopes; `core_answered` lets gRPC core
answer the calls cancelled on an event loop before that loop ends."""

from __future__ import annotations

import asyncio
import math
from typing import Any

__all__ = ["cancellable", "core_answered"]


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
        import anyio  # here: a client that only calls from blocking code (`j`) never loads anyio

        if anyio.current_effective_deadline() == -math.inf:  # an anyio scope is cancelled
            await anyio.sleep_forever()
        raise


# The task of a grpc.aio call that waits for its status from gRPC core; a cancelled call keeps it
# until core answered (its other cancelled operations are answered with it).
_STATUS_WATCHER = "_AioCall._handle_status_once_received"
CORE_ANSWER_SECONDS = 5.0


async def core_answered() -> None:
    """Wait (at most CORE_ANSWER_SECONDS) until gRPC core has answered the calls cancelled on this event loop.

    For a loop that ends next (a client's own): grpc.aio hands core's answers to a call's loop
    through whichever loop it serves at the time, so an answer that comes after this loop closed
    would make another loop of the process (an application's, another client's) report "Event
    loop is closed". The watchers are found by grpc's own coroutine name: if grpc renames it,
    this waits for nothing.
    """
    current = asyncio.current_task()
    watchers = [
        task
        for task in asyncio.all_tasks()
        if task is not current and getattr(task.get_coro(), "__qualname__", None) == _STATUS_WATCHER
    ]
    if watchers:
        import anyio

        with anyio.move_on_after(CORE_ANSWER_SECONDS):
            await asyncio.wait(watchers)
