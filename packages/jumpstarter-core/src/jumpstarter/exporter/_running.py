"""`serve_until_signalled`: an exporter process's life, from listening to stopping.

Stopping must work even when hardware does not: SIGTERM or SIGINT starts a graceful stop
(calls get a moment to finish, then the session waits for driver code still running, up to
its grace, says which calls it leaves behind and closes the drivers it can); the same signal
again stops the process at once, saying what still ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable

import anyio

from jumpstarter.exporter._listeners import Listening, TcpListener, listen
from jumpstarter.exporter._provider import SessionProvider
from jumpstarter.exporter.guard import raise_descriptor_limit

__all__ = ["exit_at_once", "serve_until_signalled"]

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


async def serve_until_signalled(
    provider: SessionProvider,
    *,
    unix_path: str | None = None,
    tcp: TcpListener | None = None,
    private_unix: bool = False,
    on_ready: Callable[[Listening], None] = lambda where: None,
    say: Callable[[str], None] = lambda message: print(message, file=sys.stderr, flush=True),
) -> None:
    """Serve `provider` (see `listen`) until SIGTERM or SIGINT, then stop gracefully; a second
    signal ends the process at once, with exit status 128 + the signal's number.

    Raises the soft limit of open files first. `on_ready` hears where it serves; `say` tells
    the user that it stops, and how.
    """
    raise_descriptor_limit()
    with anyio.open_signal_receiver(*_SIGNALS) as signals:
        async with listen(provider, unix_path=unix_path, tcp=tcp, private_unix=private_unix) as where:
            on_ready(where)
            async for first in signals:
                say(f"stopping ({signal.Signals(first).name}); the same signal again stops at once")
                break
            # From now on a signal ends the process: the stop below may wait on stuck driver code.
            loop = asyncio.get_running_loop()
            for number in _SIGNALS:
                loop.add_signal_handler(number, exit_at_once, number, provider, say)


def exit_at_once(number: int, provider: SessionProvider, say: Callable[[str], None]) -> None:
    session = provider.current_session()
    running = session.running_calls() if session is not None else []
    left = f": left running: {'; '.join(running)}" if running else ""
    say(f"stopped at once ({signal.Signals(number).name} again){left}")
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    # Not an exception: the stop in progress may be waiting on stuck driver code and must not run on.
    os._exit(128 + number)
