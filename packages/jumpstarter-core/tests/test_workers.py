"""WorkerThreads: blocking driver code off the event loop."""

from __future__ import annotations

import threading
import time

import anyio
import pytest

from jumpstarter.exporter._workers import WorkerThreads

pytestmark = pytest.mark.anyio


async def test_functions_run_in_worker_threads_with_their_outcome() -> None:
    workers = WorkerThreads()
    try:
        assert (await workers.run(threading.current_thread)).name == "jumpstarter-driver_0"
        assert await workers.run(lambda a, b=0: a + b, 1, b=2) == 3
        with pytest.raises(ZeroDivisionError):
            await workers.run(lambda: 1 / 0)
    finally:
        await workers.aclose()


async def test_idle_threads_are_reused_and_busy_ones_are_not_waited_for() -> None:
    workers = WorkerThreads(max_workers=4)
    release = threading.Event()
    try:
        blocked = workers.start(release.wait)
        for _ in range(20):  # sequential calls need one more thread at most
            await workers.run(time.sleep, 0)
        assert len({await workers.run(lambda: threading.current_thread().name) for _ in range(5)}) == 1
        assert not blocked.done()
    finally:
        release.set()
        await workers.aclose()
    assert threading.active_count() == 1 or all(
        not t.name.startswith("jumpstarter-driver") for t in threading.enumerate()
    )


async def test_closing_waits_for_running_code_even_if_its_caller_gave_up() -> None:
    workers = WorkerThreads()
    finished = []

    def slow() -> None:
        time.sleep(0.3)
        finished.append(True)

    with anyio.move_on_after(0.05):
        await workers.run(slow)
    assert finished == []
    await workers.aclose()
    assert finished == [True]
    with pytest.raises(RuntimeError, match="the session is closing"):
        workers.start(time.sleep, 0)
