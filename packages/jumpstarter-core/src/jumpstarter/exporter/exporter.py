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
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any, NoReturn
from uuid import uuid4, uuid5

import anyio
import grpc
from anyio.abc import TaskGroup
from google.protobuf import empty_pb2

from jumpstarter.driver import Driver
from jumpstarter.exporter.session import Session
from jumpstarter.v1 import common_pb2, jumpstarter_pb2, jumpstarter_pb2_grpc, router_pb2_grpc

logger = logging.getLogger(__name__)


class Exporter(jumpstarter_pb2_grpc.ExporterServiceServicer, router_pb2_grpc.RouterServiceServicer):
    """Serves the drivers that `build` creates, one tree per client session."""

    def __init__(
        self, build: Callable[[], Driver], *, labels: dict[str, str] | None = None, session_grace: float = 2.0
    ) -> None:
        self._build = build
        self._labels = dict(labels or {})
        self._session_grace = session_grace
        # Stable driver uuids for this process: derived from the driver's place in the tree.
        self._uuid_namespace = uuid4()
        self._session: Session | None = None
        self._users = 0  # calls running plus log streams open
        self._activity = 0  # counts the starts of calls: a session idle since its last count may end
        self._lock = anyio.Lock()
        self._tasks: TaskGroup | None = None

    async def __aenter__(self) -> Exporter:
        self._tasks = await anyio.create_task_group().__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        tasks, self._tasks = self._tasks, None  # no new waits for an idle session
        assert tasks is not None
        tasks.cancel_scope.cancel()
        await tasks.__aexit__(None, None, None)
        await self._end_session()

    # -- sessions --------------------------------------------------------------------

    @asynccontextmanager
    async def _in_session(self, context: grpc.aio.ServicerContext) -> AsyncIterator[Session]:
        async with self._lock:
            if self._session is None:
                try:
                    self._session = await self._open_session()
                except Exception as error:
                    logger.exception("starting a session failed")
                    await _abort(context, grpc.StatusCode.UNAVAILABLE, f"the exporter could not start: {error}")
            self._users += 1
            self._activity += 1
            session = self._session
        try:
            yield session
        finally:
            self._users -= 1
            if self._users == 0 and self._tasks is not None:
                self._tasks.start_soon(self._end_when_idle, self._activity)

    async def _end_when_idle(self, activity: int) -> None:
        await anyio.sleep(self._session_grace)
        if self._users == 0 and self._activity == activity:
            await self._end_session()

    async def _end_session(self) -> None:
        with anyio.CancelScope(shield=True):
            async with self._lock:
                session, self._session = self._session, None
                if session is not None:
                    await session.__aexit__(None, None, None)
                    logger.info("session ended: drivers closed")

    async def _open_session(self) -> Session:
        root = self._build()
        self._assign_uuids(root)
        session = Session(root, labels=self._labels)
        await session.__aenter__()
        logger.info("session started: drivers created")
        return session

    def _assign_uuids(self, root: Driver) -> None:
        """Give each driver the uuid of its place in the tree (an alias keeps its first place's)."""
        places: dict[int, tuple[Driver, str]] = {}
        for driver, path in _places(root, ""):
            places.setdefault(id(driver), (driver, path))
        for driver, path in places.values():
            driver.uuid = uuid5(self._uuid_namespace, path)

    # -- ExporterService -------------------------------------------------------------

    async def GetReport(self, request: empty_pb2.Empty, context: grpc.aio.ServicerContext) -> Any:
        async with self._in_session(context) as session:
            return await session.GetReport(request, context)

    async def DriverCall(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        async with self._in_session(context) as session:
            return await session.DriverCall(request, context)

    async def StreamingDriverCall(self, request: Any, context: grpc.aio.ServicerContext) -> None:
        async with self._in_session(context) as session:
            await session.StreamingDriverCall(request, context)

    async def LogStream(self, request: empty_pb2.Empty, context: grpc.aio.ServicerContext) -> None:
        # An open log stream is what keeps a client attached to its session.
        async with self._in_session(context) as session:
            await session.LogStream(request, context)

    async def Reset(self, request: Any, context: grpc.aio.ServicerContext) -> NoReturn:
        await _abort(context, grpc.StatusCode.UNIMPLEMENTED, "Reset is not implemented by this exporter")

    async def GetStatus(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        session = self._session
        if session is not None:
            return await session.GetStatus(request, context)
        return jumpstarter_pb2.GetStatusResponse(status=common_pb2.EXPORTER_STATUS_LEASE_READY, message="")

    async def EndSession(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return jumpstarter_pb2.EndSessionResponse(
            success=False, message="sessions end by themselves when the last client leaves"
        )

    # -- RouterService ---------------------------------------------------------------

    async def Stream(self, request_iterator: Any, context: grpc.aio.ServicerContext) -> None:
        async with self._in_session(context) as session:
            await session.Stream(request_iterator, context)

    def add_to(self, server: grpc.aio.Server) -> None:
        jumpstarter_pb2_grpc.add_ExporterServiceServicer_to_server(self, server)
        router_pb2_grpc.add_RouterServiceServicer_to_server(self, server)


async def _abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    await context.abort(code, message)
    raise AssertionError("unreachable")


def _places(driver: Driver, path: str) -> Iterator[tuple[Driver, str]]:
    """The drivers of a tree with their paths of names ("/dut/serial"), parents first."""
    yield driver, path
    for name, child in driver.children.items():
        yield from _places(child, f"{path}/{name}")
