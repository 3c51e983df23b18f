"""`WorkerThreads`: the threads that run a session's blocking driver code, fairly between callers.

Sync driver methods and sync generators never run on the event loop: each call hands its
function to a worker thread and awaits the result. That hand-off is on the path of every
sync driver call, so it is kept minimal: one queue put on the way in and one
`call_soon_threadsafe` on the way out (`loop.run_in_executor` adds locks and a second future),
shared by the calls that end while the loop has not yet taken the outcome of another (under
load, fewer wake-ups of the loop). The two threads share no lock on that path: idle threads
and finished calls are counted in deques, whose appends and pops are atomic, so that neither
thread waits for the other to release a lock (each such wait costs both a thread switch).

Blocking code may block for long (a generator streaming for hours, a call waiting on stuck
hardware), so one caller must not take every thread: each caller (a client connection) runs
at most `per_caller` functions at a time and the rest of its calls wait in its own queue;
callers take turns for the threads when all `max_workers` are busy. A call whose caller gave
up (its RPC was cancelled) before it started never starts. Scheduling happens on the event
loop; the threads only run functions.

The threads are daemons: code stuck in hardware I/O cannot keep the process from exiting
once `aclose` has given up on it (and said which calls those are).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

__all__ = ["WorkerThreads"]


class _Task:
    __slots__ = ("args", "caller", "context", "function", "future", "kwargs", "label", "started")

    def __init__(
        self,
        future: asyncio.Future[Any],
        function: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        caller: Hashable,
        label: object,
    ) -> None:
        self.future = future
        self.context = contextvars.copy_context()
        self.function = function
        self.args = args
        self.kwargs = kwargs
        self.caller = caller
        self.label = label
        self.started = 0.0


class _Caller:
    __slots__ = ("queue", "running")

    def __init__(self) -> None:
        self.running = 0
        self.queue: deque[_Task] = deque()


class WorkerThreads:
    """A pool of threads, started as needed, that runs functions for one event loop."""

    def __init__(self, max_workers: int = 256, per_caller: int = 64, name: str = "jumpstarter-driver") -> None:
        self._max_workers = max_workers
        self._per_caller = per_caller
        self._name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        # One token per idle thread: appended by the thread, popped by the loop (no lock).
        self._idle: deque[None] = deque()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()  # guards _threads
        self._callers: dict[Hashable, _Caller] = {}
        self._waiting: deque[Hashable] = deque()  # callers with queued tasks, in turn
        self._running: set[_Task] = set()
        self._closing = False
        self._changed: asyncio.Event | None = None  # set when a task ends or a thread exits, while closing
        # Outcomes handed back to the loop: one wake-up of the loop for all those that end together.
        # `_wake_pending` is set by the thread that asks the loop to take them, cleared by the loop
        # before it takes them: an outcome appended after that asks again (see `_take_finished`).
        self._finished: deque[tuple[_Task, bool, Any]] = deque()
        self._wake_pending = False

    # -- on the event loop -------------------------------------------------------------------

    def start(
        self,
        function: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        caller: Hashable = None,
        label: object = None,
    ) -> asyncio.Future[Any]:
        """Run ``function(*args, **kwargs)`` in a worker thread for `caller`; the future resolves
        on this loop with its outcome. `label` says what runs, for `running()`.

        Cancelling the future drops a call that has not started yet; a call that has started
        runs to its end, and the session waits for it (up to its grace) before closing the drivers.
        """
        if self._closing:
            raise RuntimeError("the session is closing: no more driver code runs")
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        task = _Task(loop.create_future(), function, args, kwargs or {}, caller, label)
        state = self._callers.get(caller)
        if state is None:
            state = self._callers[caller] = _Caller()
        if state.running < self._per_caller and len(self._running) < self._max_workers:
            self._dispatch(task, state)
        else:
            if not state.queue:
                self._waiting.append(caller)
            state.queue.append(task)
            task.future.add_done_callback(lambda _future: self._drop_if_cancelled(task))
        return task.future

    async def run(
        self,
        function: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        caller: Hashable = None,
        label: object = None,
    ) -> Any:
        return await self.start(function, args, kwargs, caller=caller, label=label)

    def running(self) -> list[tuple[object, float]]:
        """What runs now: the label of each call and for how many seconds it has run."""
        now = time.monotonic()
        return [(task.label, now - task.started) for task in self._running]

    def _dispatch(self, task: _Task, state: _Caller) -> None:
        state.running += 1
        task.started = time.monotonic()
        self._running.add(task)
        try:
            self._idle.pop()
        except IndexError:  # every thread is busy: one more
            with self._lock:
                thread = threading.Thread(target=self._work, name=f"{self._name}_{len(self._threads)}", daemon=True)
                self._threads.append(thread)
            thread.start()
        self._tasks.put(task)

    def _finish(self, task: _Task, succeeded: bool, outcome: Any) -> None:
        self._running.discard(task)
        state = self._callers[task.caller]
        state.running -= 1
        if not task.future.done():
            if succeeded:
                task.future.set_result(outcome)
            else:
                task.future.set_exception(outcome)
        if self._waiting:
            self._next()
        if state.running == 0 and not state.queue:
            self._callers.pop(task.caller, None)
        if self._changed is not None:
            self._changed.set()

    def _take_finished(self) -> None:
        # Cleared before taking: a thread that appends after the last pop below sees it cleared
        # and wakes the loop again (one that appends before is taken now, maybe with a spare wake-up).
        self._wake_pending = False
        finished = self._finished
        failure = None
        while finished:
            task, succeeded, outcome = finished.popleft()
            try:
                self._finish(task, succeeded, outcome)
            except Exception as error:  # the others are finished all the same; the loop reports it
                failure = failure or error
        if failure is not None:
            raise failure

    def _next(self) -> None:
        """Start queued tasks while threads allow, one caller after the other."""
        for _ in range(len(self._waiting)):
            if len(self._running) >= self._max_workers or not self._waiting:
                return
            caller = self._waiting.popleft()
            state = self._callers[caller]
            while state.queue and state.queue[0].future.cancelled():
                state.queue.popleft()
            if state.queue and state.running < self._per_caller:
                self._dispatch(state.queue.popleft(), state)
            if state.queue:
                self._waiting.append(caller)
            elif state.running == 0:
                del self._callers[caller]

    def _drop_if_cancelled(self, task: _Task) -> None:
        # A queued call whose caller gave up: it never starts (and its arguments are freed now).
        state = self._callers.get(task.caller)
        if not task.future.cancelled() or state is None or task not in state.queue:
            return
        state.queue.remove(task)
        if not state.queue:
            if task.caller in self._waiting:
                self._waiting.remove(task.caller)
            if state.running == 0:
                del self._callers[task.caller]

    # -- in the threads ----------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                break
            succeeded = True
            try:
                outcome = task.context.run(task.function, *task.args, **task.kwargs)
            except BaseException as error:
                succeeded, outcome = False, error
            # Idle before the caller hears back, so that its next call finds this thread.
            self._idle.append(None)
            self._finished.append((task, succeeded, outcome))
            if not self._wake_pending:  # otherwise the loop is already asked to take them
                self._wake_pending = True
                self._call_soon(self._take_finished)
            # Hold no references while waiting for the next task.
            del task, outcome
        with self._lock:
            self._threads.remove(threading.current_thread())
        self._call_soon(self._thread_exited)

    def _call_soon(self, callback: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: code that ran past the session's end
            self._loop.call_soon_threadsafe(callback, *args)  # type: ignore[union-attr]

    def _thread_exited(self) -> None:
        if self._changed is not None:
            self._changed.set()

    # -- closing -----------------------------------------------------------------------------

    async def aclose(self, grace: float | None = None) -> list[tuple[object, float]]:
        """Start nothing more and wait for the code still running: at most `grace` seconds
        (None: as long as it takes). Return what still runs then (see `running()`): its
        threads are left behind. The other threads are stopped."""
        self._closing = True
        self._changed = asyncio.Event()
        for state in list(self._callers.values()):
            for task in list(state.queue):
                task.future.cancel()  # never started: its caller hears so
        deadline = None if grace is None else time.monotonic() + grace
        while self._running and (deadline is None or time.monotonic() < deadline):
            self._changed.clear()
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                await asyncio.wait_for(self._changed.wait(), timeout)
            except TimeoutError:
                break
        stuck = self.running()
        with self._lock:
            threads = list(self._threads)
        for _ in threads:
            self._tasks.put(None)
        # The threads of stuck code are left to finish (or not) on their own; the others exit now.
        while True:
            with self._lock:
                if len(self._threads) <= len(stuck):
                    break
            self._changed.clear()
            await self._changed.wait()
        with self._lock:
            exited = [thread for thread in threads if thread not in self._threads]
        for thread in exited:
            thread.join()  # already past its last line: returns at once
        return stuck
