"""`ThreadChannel`: a bounded FIFO between worker threads and one event loop.

Blocking code (a sync generator in a driver, a `BlockingStream` in a client thread) has to
hand data to the event loop and back. Doing it with one `from_thread.run` per item costs
two thread switches per item. A ThreadChannel instead queues items under a lock and
wakes the other side only when it is actually waiting, so a busy producer and consumer
exchange whole batches with no switch per item, and a slow side bounds the backlog.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

from anyio import BrokenResourceError, ClosedResourceError, EndOfStream

T = TypeVar("T")


class ThreadChannel(Generic[T]):
    """A FIFO of items with a capacity, usable from threads and from one event loop.

    The producer calls `put` (from a thread) or `aput` (from the loop) and finally `finish`;
    the consumer calls `get_batch` / `aget_batch` and may `abort` when it loses interest.
    Capacity is counted with `weight` (1 per item by default; `len` for bytes). One item
    heavier than the capacity is still accepted when the channel is empty.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, capacity: int, weight: Callable[[T], int] | None = None):
        self._loop = loop
        self._capacity = capacity
        self._weight = weight or (lambda item: 1)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)  # for threads waiting on either side
        self._items: deque[tuple[T, int]] = deque()
        self._load = 0
        self._finished = False
        self._error: BaseException | None = None
        self._aborted = False
        self._loop_waiters: list[asyncio.Future[None]] = []  # loop-side waits for a change

    # -- shared ----------------------------------------------------------------------

    def _wake(self) -> None:
        """Wake whoever waits for a change; the caller holds the lock."""
        self._changed.notify_all()
        for waiter in self._loop_waiters:
            self._loop.call_soon_threadsafe(_resolve, waiter)
        self._loop_waiters.clear()

    def _has_room(self, weight: int) -> bool:
        return self._load == 0 or self._load + weight <= self._capacity

    def _take(self, max_items: int) -> list[T]:
        batch: list[T] = []
        while self._items and len(batch) < max_items:
            item, weight = self._items.popleft()
            self._load -= weight
            batch.append(item)
        self._wake()
        return batch

    def _ended(self) -> BaseException:
        if self._error is not None:
            # Handed over once: the channel keeps no reference to an exception whose traceback
            # holds the frames that hold the channel (a cycle only the cyclic collector frees).
            error, self._error = self._error, None
            return error
        return EndOfStream() if self._finished else ClosedResourceError()

    def _register_loop_waiter(self) -> asyncio.Future[None]:
        """A future resolved at the next change; the caller holds the lock."""
        waiter = self._loop.create_future()
        self._loop_waiters.append(waiter)
        return waiter

    async def _wait_on_loop(self, waiter: asyncio.Future[None]) -> None:
        try:
            await waiter
        finally:
            with self._lock:
                if waiter in self._loop_waiters:
                    self._loop_waiters.remove(waiter)

    # -- producer --------------------------------------------------------------------

    def put(self, item: T) -> None:
        """Add an item from a thread, blocking while the channel is full.

        Raises BrokenResourceError once the consumer has aborted.
        """
        weight = self._weight(item)
        with self._lock:
            while not self._aborted and not self._has_room(weight):
                self._changed.wait()
            if self._aborted:
                raise BrokenResourceError("the consumer has gone away")
            self._items.append((item, weight))
            self._load += weight
            self._wake()

    def try_put(self, item: T, *, force: bool = False) -> bool:
        """Add an item without waiting, from any thread; False if the channel is full or aborted.

        `force` adds it even to a full channel (for small markers that must not be lost).
        """
        weight = self._weight(item)
        with self._lock:
            if self._aborted or self._finished or not (force or self._has_room(weight)):
                return False
            self._items.append((item, weight))
            self._load += weight
            self._wake()
            return True

    async def aput(self, item: T) -> None:
        """Add an item from the event loop, waiting while the channel is full."""
        weight = self._weight(item)
        while True:
            with self._lock:
                if self._aborted:
                    raise BrokenResourceError("the consumer has gone away")
                if self._has_room(weight):
                    self._items.append((item, weight))
                    self._load += weight
                    self._wake()
                    return
                waiter = self._register_loop_waiter()
            await self._wait_on_loop(waiter)

    def finish(self, error: BaseException | None = None) -> None:
        """No more items: the consumer gets the queued ones, then EndOfStream (or `error`, once)."""
        with self._lock:
            if not self._finished:
                self._finished = True
                self._error = None if self._aborted else error  # nobody would take it
                self._wake()

    # -- consumer --------------------------------------------------------------------

    def get_batch(self, max_items: int = 1 << 30) -> list[T]:
        """Take up to `max_items` queued items from a thread, blocking while there are none.

        Raises EndOfStream (or the producer's error) once the producer finished and the
        queue is empty.
        """
        with self._lock:
            while not self._items and not self._finished and not self._aborted:
                self._changed.wait()
            if self._items:
                return self._take(max_items)
            raise self._ended()

    async def aget_batch(self, max_items: int = 1 << 30) -> list[T]:
        """Take up to `max_items` queued items on the event loop, waiting while there are none."""
        while True:
            with self._lock:
                if self._items:
                    return self._take(max_items)
                if self._finished or self._aborted:
                    raise self._ended()
                waiter = self._register_loop_waiter()
            await self._wait_on_loop(waiter)

    def abort(self) -> None:
        """The consumer stops: queued items are dropped and the producer's next put fails."""
        with self._lock:
            self._aborted = True
            self._items.clear()
            self._load = 0
            self._error = None
            self._wake()


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
