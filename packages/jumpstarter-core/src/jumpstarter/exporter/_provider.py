"""What the exporter's servicer serves: a `SessionProvider` hands out the session of each call.

The servicer (`jumpstarter.exporter._servicer`) is the same whoever provides the sessions:

- `SingleSession`: one tree in one session for the provider's whole life (``serve()``,
  ``jmp shell`` with a local exporter);
- `jumpstarter.exporter.Exporter`: a session started on demand and shared by the clients
  connected at the same time (``jmp exporter run``);
- `jumpstarter.exporter.LeaseSessions`: a fresh session per controller lease; it hands out
  the lease's session while the lease is on, refuses calls otherwise (`ExporterNotReady`),
  and reports the lease's progress through its `status`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, runtime_checkable

import anyio

from jumpstarter.driver.base import Driver
from jumpstarter.exporter.session import STOP_GRACE_SECONDS, Session
from jumpstarter.v1 import common_pb2

__all__ = ["SessionProvider", "SingleSession", "StatusBoard", "StatusUpdate"]


@dataclass(frozen=True)
class StatusUpdate:
    """One state of a `StatusBoard`: what GetStatus answers."""

    version: int
    status: common_pb2.ExporterStatus
    message: str
    previous: common_pb2.ExporterStatus | None


class StatusBoard:
    """The exporter's status as GetStatus reports it: a value of `jumpstarter.v1.ExporterStatus`,
    a message, a version that counts the updates, and the status before the last update.

    It remembers its last HISTORY updates, so that a client waiting for a change (`after`)
    sees each of them, even one that lasted an instant (a failed hook, then AVAILABLE)."""

    HISTORY = 32

    def __init__(
        self,
        status: common_pb2.ExporterStatus = common_pb2.EXPORTER_STATUS_LEASE_READY,
        message: str = "",
        *,
        observer: Callable[[common_pb2.ExporterStatus, str], None] | None = None,
    ) -> None:
        """`observer` is told of every update (a controller link forwards them with ReportStatus)."""
        self.status = status
        self.message = message
        self.version = 0
        self.previous: common_pb2.ExporterStatus | None = None
        self._observer = observer
        self._history: deque[StatusUpdate] = deque(maxlen=self.HISTORY)
        self._changed: anyio.Event | None = None  # created by the first waiter (on the event loop)

    def update(self, status: common_pb2.ExporterStatus, message: str = "") -> None:
        """Called on the event loop that serves GetStatus."""
        self.previous, self.status = self.status, status
        self.message = message
        self.version += 1
        self._history.append(self.current())
        if self._changed is not None:
            self._changed.set()
            self._changed = None
        if self._observer is not None:
            self._observer(status, message)

    def current(self) -> StatusUpdate:
        return StatusUpdate(self.version, self.status, self.message, self.previous)

    async def after(self, version: int, seconds: float) -> StatusUpdate:
        """The update that followed `version`, waiting up to `seconds` for one; the current
        status when there is none yet, or when that update is forgotten."""
        if version == self.version:
            if self._changed is None:
                self._changed = anyio.Event()
            with anyio.move_on_after(seconds):
                await self._changed.wait()
        for update in self._history:
            if update.version == version + 1:
                return update
        return self.current()


@runtime_checkable
class SessionProvider(Protocol):
    """Sessions for the calls a servicer receives. Entered (``async with``) while served."""

    @property
    def labels(self) -> Mapping[str, str]:
        """The exporter's labels, as reported to clients."""
        ...

    @property
    def status(self) -> StatusBoard:
        """What GetStatus reports."""
        ...

    def session(self) -> AbstractAsyncContextManager[Session]:
        """The session that serves one call, held while the call runs.

        Raises `jumpstarter.common.wire.CallRefused` (or `ExporterNotReady`) when no
        session can serve calls now.
        """
        ...

    def current_session(self) -> Session | None:
        """The session in service, if any, without starting one (for log barriers)."""
        ...

    async def end_session(self) -> tuple[bool, str]:
        """A client asks to end its session (EndSession): whether it ended, and why (not)."""
        ...

    async def __aenter__(self) -> object: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc_value: BaseException | None, traceback: TracebackType | None
    ) -> bool | None: ...


class SingleSession(anyio.AsyncContextManagerMixin):
    """Serves one driver tree in one session, from entering to leaving: its drivers are reset
    on entry and closed on exit, whoever connects in between."""

    def __init__(
        self, root: Driver, *, labels: Mapping[str, str] | None = None, stop_grace: float | None = STOP_GRACE_SECONDS
    ) -> None:
        self.root = root
        self.labels = dict(labels or {})
        self._stop_grace = stop_grace
        self.status = StatusBoard()
        self._session: Session | None = None
        self._held: _Held | None = None

    @asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncIterator[SingleSession]:
        async with Session(self.root, stop_grace=self._stop_grace) as session:
            self._session, self._held = session, _Held(session)
            try:
                yield self
            finally:
                self._session = self._held = None

    def session(self) -> AbstractAsyncContextManager[Session]:
        # The same object for every call: this is on the path of each call, and an
        # @asynccontextmanager would make (and asyncio track) an async generator every time.
        if self._held is None:
            raise RuntimeError("SingleSession serves calls only while it is entered (async with)")
        return self._held

    def current_session(self) -> Session | None:
        return self._session

    async def end_session(self) -> tuple[bool, str]:
        return False, "this session has no lease to end"


class _Held(AbstractAsyncContextManager[Session]):
    """A session held for a call when there is nothing to acquire or release (`SingleSession`)."""

    __slots__ = ("_session",)

    def __init__(self, session: Session) -> None:
        self._session = session

    async def __aenter__(self) -> Session:
        return self._session

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc_value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        return None
