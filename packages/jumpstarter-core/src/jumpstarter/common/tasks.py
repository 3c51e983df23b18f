"""Background tasks that serve the body of a `with` block."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from anyio.abc import TaskGroup


@asynccontextmanager
async def background_tasks() -> AsyncIterator[TaskGroup]:
    """A task group whose tasks live as long as the body: leaving the body cancels them.

    Unlike a bare task group, an exception from the body, or the single exception of a
    failed task, propagates as itself rather than wrapped in an ExceptionGroup, so callers
    can catch the errors they expect.
    """
    error: BaseException | None = None
    try:
        async with anyio.create_task_group() as tasks:
            try:
                yield tasks
            except BaseException as exception:
                error = exception
            tasks.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
    if error is not None:
        raise error


class Progress:
    """Tracks a transfer that should end by itself, to wait for it only while it advances.

    The side doing the work calls `advanced()` at each step and `finish()` at the end; a
    closing side calls `wait(idle_seconds)`, which returns at the end, or once the work has
    not advanced for `idle_seconds` (a peer that stopped reading, or that will never end).
    """

    def __init__(self) -> None:
        self.finished = anyio.Event()
        self._last = anyio.current_time()

    def advanced(self) -> None:
        self._last = anyio.current_time()

    def finish(self) -> None:
        self.finished.set()

    async def wait(self, idle_seconds: float) -> bool:
        """True if the work finished; False if it stalled."""
        while not self.finished.is_set():
            remaining = self._last + idle_seconds - anyio.current_time()
            if remaining <= 0:
                return False
            with anyio.move_on_after(remaining):
                await self.finished.wait()
        return True
