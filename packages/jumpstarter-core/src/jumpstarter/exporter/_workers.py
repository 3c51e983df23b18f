"""`WorkerThreads`: the threads that run a session's blocking driver code.

Sync driver methods and sync generators never run on the event loop: each call hands its
function to a worker thread and awaits the result. That hand-off is on the path of every
sync driver call, so the pool is kept minimal: one queue put on the way in and one
`call_soon_threadsafe` on the way out, about 15 µs less per call than
`loop.run_in_executor` (whose concurrent.futures machinery adds locks and a second future).
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any

_Task = tuple[
    asyncio.AbstractEventLoop,
    "asyncio.Future[Any]",
    contextvars.Context,
    Callable[..., Any],
    tuple[Any, ...],
    dict[str, Any],
]


class WorkerThreads:
    """A pool of threads, started as needed, that runs functions for one event loop."""

    def __init__(self, max_workers: int = 64, name: str = "jumpstarter-driver") -> None:
        self._max_workers = max_workers
        self._name = name
        self._tasks: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)  # one token per idle thread
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._closing = False
        self._all_stopped: asyncio.Future[None] | None = None

    def start(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> asyncio.Future[Any]:
        """Run `function` in a worker thread; the future resolves on this loop with its outcome.

        Cancelling the future does not stop the function: it runs to its end, and the
        session waits for it before closing the drivers.
        """
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:
            if self._closing:
                raise RuntimeError("the session is closing: no more driver code runs")
            if not self._idle.acquire(blocking=False) and len(self._threads) < self._max_workers:
                thread = threading.Thread(target=self._work, name=f"{self._name}_{len(self._threads)}")
                self._threads.append(thread)
                thread.start()
        self._tasks.put((loop, future, contextvars.copy_context(), function, args, kwargs))
        return future

    async def run(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await self.start(function, *args, **kwargs)

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                break
            loop, future, context, function, args, kwargs = task
            del task
            outcome: tuple[Callable[..., None], Any]
            try:
                outcome = (_set_result, context.run(function, *args, **kwargs))
            except BaseException as error:
                outcome = (_set_exception, error)
            # Idle before the caller hears back, so that its next call finds this thread.
            self._idle.release()
            loop.call_soon_threadsafe(outcome[0], future, outcome[1])
            # Hold no references while waiting for the next task.
            del future, context, function, args, kwargs, outcome
        with self._lock:
            self._threads.remove(threading.current_thread())
            if not self._threads and self._all_stopped is not None:
                self._all_stopped.get_loop().call_soon_threadsafe(_set_result, self._all_stopped, None)

    async def aclose(self) -> None:
        """Wait for the driver code still running, then stop the threads."""
        with self._lock:
            self._closing = True
            threads = list(self._threads)
            self._all_stopped = asyncio.get_running_loop().create_future()
            if not threads:
                self._all_stopped.set_result(None)
        for _ in threads:
            self._tasks.put(None)
        await asyncio.shield(self._all_stopped)
        for thread in threads:
            thread.join()  # already past its last line: returns at once


def _set_result(future: asyncio.Future[Any], result: Any) -> None:
    if not future.done():
        future.set_result(result)


def _set_exception(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        future.set_exception(error)
