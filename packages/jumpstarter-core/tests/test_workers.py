"""WorkerThreads: blocking driver code off the event loop, fairly between callers."""

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
        assert await workers.run(lambda a, b=0: a + b, (1,), {"b": 2}) == 3
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
            await workers.run(time.sleep, (0,))
        assert len({await workers.run(lambda: threading.current_thread().name) for _ in range(5)}) == 1
        assert not blocked.done()
    finally:
        release.set()
        await workers.aclose()
    assert not [thread for thread in threading.enumerate() if thread.name.startswith("jumpstarter-driver")]


async def test_closing_waits_for_running_code_even_if_its_caller_gave_up() -> None:
    workers = WorkerThreads()
    finished = []

    def slow() -> None:
        time.sleep(0.3)
        finished.append(True)

    with anyio.move_on_after(0.05):
        await workers.run(slow)
    assert finished == []
    assert await workers.aclose() == []
    assert finished == [True]
    with pytest.raises(RuntimeError, match="the session is closing"):
        workers.start(time.sleep, (0,))


async def test_a_caller_that_blocks_its_threads_does_not_hold_up_the_others() -> None:
    workers = WorkerThreads(max_workers=8, per_caller=4)
    release = threading.Event()
    try:
        # A greedy caller: more blocked calls than the threads it may use.
        greedy = [workers.start(release.wait, caller="greedy", label=("greedy", n)) for n in range(10)]
        with anyio.fail_after(5):
            assert await workers.run(lambda: "served", caller="other") == "served"
        assert len(workers.running()) == 4  # the greedy caller's other calls wait for its own threads
        release.set()
        with anyio.fail_after(5):
            for future in greedy:
                assert await future is True
    finally:
        release.set()
        await workers.aclose()


async def test_callers_take_turns_when_every_thread_is_busy() -> None:
    workers = WorkerThreads(max_workers=2, per_caller=2)
    gates = {name: threading.Event() for name in ("a1", "a2")}
    order: list[str] = []
    try:
        blockers = [workers.start(gates[name].wait, caller="a") for name in gates]
        # Queued while both threads are busy: a's backlog first, then b's one call.
        queued = [workers.start(order.append, (f"a{n}",), caller="a") for n in range(3, 6)]
        queued.append(workers.start(order.append, ("b1",), caller="b"))
        gates["a1"].set()
        gates["a2"].set()
        with anyio.fail_after(5):
            for future in [*blockers, *queued]:
                await future
        assert order.index("b1") <= 1, order  # b did not wait for all of a's backlog
    finally:
        for gate in gates.values():
            gate.set()
        await workers.aclose()


async def test_a_queued_call_whose_caller_gave_up_never_runs() -> None:
    workers = WorkerThreads(max_workers=1, per_caller=1)
    release = threading.Event()
    ran: list[str] = []
    try:
        blocker = workers.start(release.wait, caller="a")
        with anyio.move_on_after(0.05):
            await workers.run(ran.append, ("abandoned",), caller="a")
        release.set()
        await blocker
        assert await workers.run(lambda: "next", caller="a") == "next"
        assert ran == []
    finally:
        release.set()
        await workers.aclose()


async def test_closing_gives_up_on_stuck_code_after_the_grace_and_says_what_it_is() -> None:
    workers = WorkerThreads()
    release = threading.Event()
    try:
        workers.start(release.wait, caller="a", label=("relay", "on"))
        await anyio.sleep(0.05)
        started = time.monotonic()
        stuck = await workers.aclose(grace=0.3)
        assert 0.25 < time.monotonic() - started < 3
        assert [label for label, _ in stuck] == [("relay", "on")]
        thread = next(t for t in threading.enumerate() if t.name.startswith("jumpstarter-driver"))
        assert thread.daemon  # cannot keep the process from exiting
    finally:
        release.set()
    for thread in threading.enumerate():
        if thread.name.startswith("jumpstarter-driver"):
            thread.join(5)


async def test_calls_that_end_together_each_get_their_own_outcome() -> None:
    # Many calls ending at once share wake-ups of the loop (see WorkerThreads._take_finished):
    # none may be lost or given another's outcome, whichever thread ends when.
    workers = WorkerThreads(max_workers=16, per_caller=16)

    def echo(value: int) -> int:
        time.sleep((value % 7) / 5000)  # 0 to 1.2 ms: calls end in every order, often together
        if value % 10 == 9:
            raise ValueError(value)
        return value

    try:
        futures = [workers.start(echo, (n,), caller=n % 3) for n in range(400)]
        with anyio.fail_after(10):
            for n, future in enumerate(futures):
                if n % 10 == 9:
                    with pytest.raises(ValueError) as raised:
                        await future
                    assert raised.value.args == (n,)
                else:
                    assert await future == n
        assert workers.running() == []
        assert len([t for t in threading.enumerate() if t.name.startswith("jumpstarter-driver")]) <= 16
    finally:
        await workers.aclose()
