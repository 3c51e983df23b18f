"""anyio's bug behind the one asyncio error our client's loops drop (jumpstarter.common.loops).

On asyncio, anyio's Unix socket streams wait for data with ``loop.add_reader(sock,
future.set_result, None)``. When the data arrives in the loop iteration in which the waiting
receive is cancelled, the reader's handle is already queued: it sets the result of a cancelled
future, and asyncio reports "Exception in callback Future.set_result(None)" with an
InvalidStateError (nothing else goes wrong: the receive is cancelled as asked). A shutdown that
cancels a tunnel's connections while bytes still flow meets it now and then.

Present in anyio 4.16.0 (the newest release) and in its main branch; the sibling in
``aclose()`` was agronholm/anyio#1267, fixed by #1269 in 4.16.0. This test reproduces it at
will: it passes (strict xfail) while the bug is there, and fails once anyio fixes it, the
moment to remove jumpstarter.common.loops' guard (which jumpstarter.common.unix_sockets sets
on the loop of whoever opens our Unix sockets).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import SocketListener, SocketStream

from jumpstarter.common.unix_sockets import connect_unix, create_unix_listener


def _errors_of_the_race(
    listen: Callable[[Path], Awaitable[SocketListener]], connect: Callable[[Path], Awaitable[SocketStream]]
) -> list[tuple[str, type | None]]:
    """What asyncio reports (through the loop's exception handler) once a receive is cancelled as data arrives."""

    async def main() -> list[dict[str, Any]]:
        errors: list[dict[str, Any]] = []
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: errors.append(context))  # as anyio's test runner does
        with tempfile.TemporaryDirectory() as directory:
            path = Path(directory) / "socket"
            async with await listen(path) as listener, await connect(path) as client, await listener.accept() as server:
                with anyio.CancelScope() as scope:
                    async with anyio.create_task_group() as tasks:

                        async def data_and_cancel() -> None:
                            await anyio.sleep(0.05)  # the receive waits by then
                            await client.send(b"x")  # the data arrives (the reader fires next iteration),
                            loop.call_soon(scope.cancel)  # and the receive is cancelled before its reader runs

                        tasks.start_soon(data_and_cancel)
                        await server.receive()
                assert scope.cancelled_caught
                await anyio.sleep(0.05)  # the queued reader has run
        return errors

    return [(error["message"], type(error.get("exception"))) for error in anyio.run(main)]


@pytest.mark.xfail(strict=True, reason="anyio's Unix socket receive, cancelled as data arrives (see the module)")
def test_a_unix_socket_receive_cancelled_as_data_arrives_leaves_no_error() -> None:
    assert _errors_of_the_race(anyio.create_unix_listener, anyio.connect_unix) == []


def test_our_unix_sockets_keep_the_race_quiet_on_the_callers_loop() -> None:
    # The tunnel, the exporter and the network drivers open them on a loop that is not ours.
    assert _errors_of_the_race(create_unix_listener, connect_unix) == []
