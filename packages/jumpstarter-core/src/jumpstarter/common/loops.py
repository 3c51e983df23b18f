"""The event loops of our processes: `blocking_loop` starts one in a thread of its own, with
`quiet_cancelled_wakeups`, which keeps one harmless asyncio error that anyio's Unix sockets cause
out of the user's logs, and lets gRPC core answer the calls cancelled on it before it ends. Code
that opens Unix sockets on a loop of the caller's (the tunnel, the exporter, the network drivers)
does so through jumpstarter.common.unix_sockets, which sets the same guard on that loop.

On asyncio, anyio 4.16's Unix socket streams wait for data with ``loop.add_reader(sock,
future.set_result, None)``. When data arrives in the loop iteration in which the waiting receive
is cancelled, the reader's callback is already queued and sets the result of a cancelled future:
asyncio logs "Exception in callback Future.set_result(None)" with an InvalidStateError, although
nothing went wrong (the receive is cancelled, as asked). A client's tunnel meets it when a lease
ends while bytes still flow. Reproduced in packages/jumpstarter-core/tests/test_anyio_unix_receive_race.py,
which fails once anyio fixes it: then the guard can go.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from anyio.from_thread import BlockingPortal

__all__ = ["blocking_loop", "quiet_cancelled_wakeups"]


@contextmanager
def blocking_loop() -> Iterator[BlockingPortal]:
    """An event loop running in a thread of its own, for blocking code (anyio's blocking portal).

    Before the loop ends, gRPC core answers the calls cancelled on it (see `core_answered`):
    otherwise an answer could reach another loop of the process after this one closed.
    """
    from anyio.from_thread import start_blocking_portal

    from jumpstarter.common.calls import core_answered

    with start_blocking_portal() as portal:
        portal.call(_quiet_this_loop)
        try:
            yield portal
        finally:
            portal.call(core_answered)


def _quiet_this_loop() -> None:
    quiet_cancelled_wakeups(asyncio.get_running_loop())


def quiet_cancelled_wakeups(loop: asyncio.AbstractEventLoop) -> None:
    """Drop, on `loop`, the error of a queued ``set_result`` on a future cancelled meanwhile; report the
    rest as before (to the handler set before, or asyncio's default). Setting it twice adds nothing."""
    previous = loop.get_exception_handler()
    if getattr(previous, _GUARD, False):
        return

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if _sets_a_cancelled_future(context):
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    setattr(handler, _GUARD, True)
    loop.set_exception_handler(handler)


_GUARD = "_drops_cancelled_wakeups"


def _sets_a_cancelled_future(context: dict[str, Any]) -> bool:
    if not isinstance(context.get("exception"), asyncio.InvalidStateError):
        return False
    callback = getattr(context.get("handle"), "_callback", None)  # asyncio.Handle's callback
    future = getattr(callback, "__self__", None)
    return (
        getattr(callback, "__name__", None) == "set_result"
        and isinstance(future, asyncio.Future)
        and future.cancelled()
    )
