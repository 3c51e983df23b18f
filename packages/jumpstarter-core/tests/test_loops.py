"""`jumpstarter.common.loops`: our event loops drop exactly one harmless error of anyio's, and report the rest."""

from __future__ import annotations

import asyncio
from typing import Any

from jumpstarter.common.loops import blocking_loop, quiet_cancelled_wakeups


def _reported(schedule: Any) -> list[dict[str, Any]]:
    """What a loop with `quiet_cancelled_wakeups` hands to the handler set before it, once `schedule` ran."""
    reported: list[dict[str, Any]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: reported.append(context))
        quiet_cancelled_wakeups(loop)
        schedule(loop)
        await asyncio.sleep(0.01)

    asyncio.run(main())
    return reported


def test_a_queued_set_result_on_a_cancelled_future_is_not_reported() -> None:
    # What anyio's Unix socket receive leaves behind when cancelled as data arrives.
    def schedule(loop: asyncio.AbstractEventLoop) -> None:
        future = loop.create_future()
        loop.call_soon(future.set_result, None)
        future.cancel()

    assert _reported(schedule) == []


def test_other_errors_are_reported_as_before() -> None:
    def fail() -> None:
        raise RuntimeError("a real bug")

    def schedule(loop: asyncio.AbstractEventLoop) -> None:
        done = loop.create_future()
        done.set_result(1)
        loop.call_soon(done.set_result, None)  # a future that was not cancelled: a bug somewhere
        loop.call_soon(fail)

    errors = [type(context.get("exception")) for context in _reported(schedule)]
    assert errors == [asyncio.InvalidStateError, RuntimeError]


def test_blocking_loop_runs_with_the_guard() -> None:
    with blocking_loop() as portal:
        handler = portal.call(lambda: asyncio.get_running_loop().get_exception_handler())
    assert handler is not None and handler.__qualname__.startswith("quiet_cancelled_wakeups")


def test_the_guard_is_set_once_per_loop() -> None:
    # Every Unix socket our code opens sets it on the running loop (jumpstarter.common.unix_sockets).
    async def main() -> bool:
        loop = asyncio.get_running_loop()
        quiet_cancelled_wakeups(loop)
        first = loop.get_exception_handler()
        quiet_cancelled_wakeups(loop)
        return loop.get_exception_handler() is first

    assert asyncio.run(main())
