"""`Exporter`: serves an exporter configuration, with a new driver tree per client session.

A client session begins with the first call when none is running: the exporter builds the
drivers from the configuration and resets them. Clients attach by keeping a LogStream open
(``jmp shell``, ``connect()`` and ``env()`` all do); the session ends, and its drivers are
closed, once the last attached client has left, no call is running and `session_grace`
seconds have passed without a new one (so that a client's first calls, made before it
attaches, and a script's consecutive calls all land in one session). Clients connected at
the same time share the session, so they see the same drivers; a driver that only one user
can hold at a time (a serial port) says so when it is busy.

Driver uuids stay the same from one session to the next in one exporter process, so a
client that did not attach (the original jumpstarter's `j`) still reaches its drivers when
the session it read them from has ended; what it loses is the drivers' state.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from uuid import uuid4, uuid5

import anyio
import grpc
from anyio.abc import TaskGroup

from jumpstarter.common.tasks import background_tasks
from jumpstarter.common.wire import CallRefused
from jumpstarter.driver.base import Driver
from jumpstarter.driver.tree import walk_tree
from jumpstarter.exporter._provider import StatusBoard
from jumpstarter.exporter.session import STOP_GRACE_SECONDS, Session, close_drivers

__all__ = ["Exporter"]

logger = logging.getLogger(__name__)


class Exporter(anyio.AsyncContextManagerMixin):
    """Serves the drivers that `build` creates, one tree per client session (a `SessionProvider`)."""

    def __init__(
        self,
        build: Callable[[], Driver],
        *,
        labels: Mapping[str, str] | None = None,
        session_grace: float = 2.0,
        stop_grace: float | None = STOP_GRACE_SECONDS,
        built: Driver | None = None,
    ) -> None:
        """`built`: a tree `build` made already (at start, to find a configuration's mistakes
        at once), for the first session."""
        self._build = build
        self._built = built
        self._stop_grace = stop_grace
        self.labels = dict(labels or {})
        # Local and direct clients may call at any time: the exporter is always ready for them.
        self.status = StatusBoard()
        self._session_grace = session_grace
        # Stable driver uuids for this process: derived from the driver's place in the tree.
        self._uuid_namespace = uuid4()
        self._session: Session | None = None
        self._starting: Session | None = None  # while its drivers are reset
        self._session_stack: AsyncExitStack | None = None  # owns the running session
        self._users = 0  # calls running plus log streams open
        self._activity = 0  # counts the starts of calls: a session idle since its last count may end
        self._lock = anyio.Lock()
        self._idle_timers: TaskGroup | None = None

    @asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncIterator[Exporter]:
        try:
            # The timers that end an idle session live as long as the exporter.
            async with background_tasks() as timers:
                self._idle_timers = timers
                try:
                    yield self
                finally:
                    self._idle_timers = None  # no new waits for an idle session
        finally:
            await self._end_session()
            if self._built is not None:  # built at start and never used: created, so closed
                places = {id(place.node): (place.node, place.path) for place in walk_tree(self._built)}
                self._built = None
                await close_drivers(list(reversed(places.values())), self._stop_grace)

    # -- SessionProvider -------------------------------------------------------------

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        async with self._lock:
            if self._session is None:
                try:
                    await self._start_session()
                except Exception as error:
                    # The driver's error, not the exporter's: one line in its log, the same for the client.
                    # FAILED_PRECONDITION (ExporterNotReady): the exporter was reached and says why it takes
                    # no calls; UNAVAILABLE would tell the client that the connection broke.
                    logger.error("starting a session failed: %s: %s", type(error).__name__, error)
                    raise CallRefused(
                        grpc.StatusCode.FAILED_PRECONDITION,
                        f"the exporter could not start its drivers: {type(error).__name__}: {error}",
                    ) from None
            self._users += 1
            self._activity += 1
            session = self._session
            assert session is not None
        try:
            yield session
        finally:
            self._users -= 1
            if self._users == 0 and self._idle_timers is not None:
                self._idle_timers.start_soon(self._end_when_idle, self._activity)

    def current_session(self) -> Session | None:
        return self._session or self._starting

    async def end_session(self) -> tuple[bool, str]:
        return False, "sessions end by themselves when the last client leaves"

    # -- sessions --------------------------------------------------------------------

    async def _start_session(self) -> None:
        root, self._built = self._built, None
        if root is None:
            root = self._build()
        self._assign_uuids(root)
        stack = AsyncExitStack()
        self._starting = Session(root, stop_grace=self._stop_grace)
        try:
            # Entering may fail (a driver's reset): the session then closed what it had reset.
            self._session = await stack.enter_async_context(self._starting)
        finally:
            self._starting = None
        self._session_stack = stack
        logger.info("session started: drivers created")

    async def _end_when_idle(self, activity: int) -> None:
        await anyio.sleep(self._session_grace)
        if self._users == 0 and self._activity == activity:
            await self._end_session()

    async def _end_session(self) -> None:
        with anyio.CancelScope(shield=True):
            async with self._lock:
                stack, self._session_stack, self._session = self._session_stack, None, None
                if stack is not None:
                    await stack.aclose()
                    logger.info("session ended: drivers closed")

    def _assign_uuids(self, root: Driver) -> None:
        """Give each driver the uuid of its place in the tree (an alias keeps its first place's)."""
        places: dict[int, tuple[Driver, str]] = {}
        for place in walk_tree(root):
            places.setdefault(id(place.node), (place.node, place.path))
        for driver, path in places.values():
            driver.uuid = uuid5(self._uuid_namespace, path)
