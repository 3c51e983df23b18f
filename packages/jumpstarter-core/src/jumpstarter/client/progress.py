"""`Progress`: waiting for a transfer to end by itself, only while it advances."""

from __future__ import annotations

import anyio

__all__ = ["Progress"]


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
