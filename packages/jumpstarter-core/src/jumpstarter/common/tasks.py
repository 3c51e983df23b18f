"""`background_tasks`: tasks that serve the body of a `with` block."""

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
