"""`ControllerLink`: an exporter that joins a lab, following its controller's leases.

The link registers the exporter (its labels and driver reports), reports every status
change of its `LeaseSessions` (ReportStatus), follows the controller's `Status` stream (a
lease begins: a fresh session, its beforeLease hook; it ends: the afterLease hook, then
ReleaseLease), listens for the clients' `Dial`s of the lease being served (`Listen`), and
bridges each to the lease's session: one `RouterService.Stream` to the router the
controller names, spliced to a new connection on the session's Unix socket (in a private
0700 directory). A Unix socket rather than an in-process server: the tunnel carries a
whole HTTP/2 connection (the client's channel), which only a real gRPC server can take,
and the socket is the one `listen()` serves anyway, with every call's limits and defences.

Losing the controller ends neither the lease nor its tunnels: the router streams belong to
the link, not to the controller's connection, so a client keeps working through a router
while the controller is away. The link reconnects with a backoff capped at
`BACKOFF_CAP_SECONDS`, for as long as it takes, registers again and reports its status; the
controller still has the lease, and the `Status` stream names it again: the session goes on.

Stopping (`stop`): the lease in progress ends (its afterLease hook runs), then OFFLINE and
`Unregister`. Draining (`drain`, SIGHUP): no new lease; the current one runs to its end, then
the same. A hook whose ``onFailure`` is ``exit`` stops it with `EXIT_HOOK_FAILED`.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import anyio
import grpc

from jumpstarter.common.unix_sockets import connect_unix
from jumpstarter.config.exporter import HooksConfig
from jumpstarter.driver.base import Driver
from jumpstarter.exporter._controller_channel import ControllerAddress, controller_channel, router_channel
from jumpstarter.exporter._leases import Lease, LeaseSessions, status_name
from jumpstarter.exporter._listeners import Listening, TcpListener, listen
from jumpstarter.exporter._running import exit_at_once
from jumpstarter.exporter._servicer import driver_reports
from jumpstarter.exporter.guard import raise_descriptor_limit
from jumpstarter.streams.copy import splice
from jumpstarter.streams.frames import FrameStream
from jumpstarter.v1 import common_pb2, jumpstarter_pb2, jumpstarter_pb2_grpc, router_pb2_grpc

__all__ = ["BACKOFF_CAP_SECONDS", "EXIT_HOOK_FAILED", "EXIT_REFUSED", "ControllerLink", "serve_lab_until_signalled"]

logger = logging.getLogger(__name__)

EXIT_REFUSED: Final = 2
"""Exit status when the controller refuses the exporter's token (a configuration to fix)."""
EXIT_HOOK_FAILED: Final = 3
"""Exit status when a hook whose ``onFailure`` is ``exit`` failed."""

# Reconnecting: the first wait, doubled after each failure up to the cap.
FIRST_DELAY_SECONDS: Final = 0.25
BACKOFF_CAP_SECONDS: Final = 3.0
# A connection that lasted this long was a good one: the next failure starts the backoff again.
STABLE_SECONDS: Final = 10.0
# A unary call to the controller (Register, ReportStatus, ReleaseLease, Unregister).
CALL_SECONDS: Final = 15.0
# Saying goodbye (OFFLINE, Unregister) to a controller that may be gone.
GOODBYE_SECONDS: Final = 5.0
# The leases this process began, remembered so that none is begun twice: one that ended here (a hook's
# failure, the client's EndSession) may still be named by the controller until it is released or deleted.
_BEGUN_KEPT = 64
# ReleaseLease errors after which retrying cannot help.
_FINAL_CODES = (
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNIMPLEMENTED,
)


@dataclass(frozen=True)
class _Report:
    status: common_pb2.ExporterStatus
    message: str


@dataclass(frozen=True)
class _Release:
    lease: str


class _Lost(Exception):
    """The connection to the controller broke (the message says how)."""


class ControllerLink:
    """Joins the lab of `address` with a fresh session per lease of the drivers `build` makes."""

    def __init__(
        self,
        address: ControllerAddress,
        build: Callable[[], Driver],
        *,
        root: Driver,
        labels: dict[str, str],
        hooks: HooksConfig,
        backoff_cap: float = BACKOFF_CAP_SECONDS,
    ) -> None:
        """`root`: a tree built once, for the driver reports that Register sends."""
        self.address = address
        self._reports = driver_reports(root)
        self._labels = labels
        self._backoff_cap = backoff_cap
        self.leases = LeaseSessions(
            build, labels=labels, hooks=hooks, on_status=self._status_changed, on_release=self._release_requested
        )
        self.exit_code = 0
        self.stop_reason = ""
        self._stopped = anyio.Event()
        self._quitting = False
        self.draining = False
        self._outbox: deque[_Report | _Release] = deque()
        self._wanted: Lease | None = None
        self._begun: deque[str] = deque(maxlen=_BEGUN_KEPT)
        self._nudged = anyio.Event()  # the wanted lease, the outbox or the draining changed
        self._tunnels: dict[str, set[anyio.CancelScope]] = {}
        self._socket = ""

    # -- the process's API ---------------------------------------------------------------

    def stop(self, reason: str, exit_code: int = 0) -> None:
        """End the lease in progress, say OFFLINE and Unregister, and return from `serve`."""
        if not self._stopped.is_set():
            self.stop_reason, self.exit_code = reason, exit_code
            self._quitting = True
            self._stopped.set()

    def drain(self) -> None:
        """Take no new lease; stop once the current one (if any) has ended."""
        self.draining = True
        self._nudge()

    async def serve(
        self, *, unix_path: str | None, tcp: TcpListener | None, on_ready: Callable[[Listening], None]
    ) -> None:
        """Serve the lab's leases (and the direct listeners) until `stop`, a drain or a hook's ``exit``."""
        async with listen(self.leases, unix_path=unix_path, tcp=tcp, private_unix=unix_path is None) as where:
            assert where.unix_path is not None
            self._socket = where.unix_path
            on_ready(where)
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._stay_connected, tasks)
                tasks.start_soon(self._follow_leases)
                tasks.start_soon(self._watch_hooks)
                await self._stopped.wait()
                tasks.cancel_scope.cancel()
            # Leaving `listen` ends the lease in progress: its afterLease hook runs, its drivers close.
        if self.exit_code != EXIT_REFUSED:  # a refused identity cannot say goodbye either: no warning about it
            await self._say_goodbye()

    # -- LeaseSessions' callbacks -----------------------------------------------------------

    def _status_changed(self, status: common_pb2.ExporterStatus, message: str) -> None:
        if self._quitting and status == common_pb2.EXPORTER_STATUS_AVAILABLE:
            return  # it will not take another lease: OFFLINE follows
        self._outbox.append(_Report(status, message))
        self._nudge()

    def _release_requested(self, lease: Lease, reason: str) -> None:
        logger.info("lease %s ended here (%s): releasing it", lease.name, reason)
        self._end_tunnels(lease.name)
        self._outbox.append(_Release(lease.name))
        self._nudge()

    def _nudge(self) -> None:
        self._nudged.set()
        self._nudged = anyio.Event()

    # -- the connection to the controller ---------------------------------------------------

    async def _stay_connected(self, tasks: anyio.abc.TaskGroup) -> None:
        delay = FIRST_DELAY_SECONDS
        lost_since: float | None = None
        while True:
            began = time.monotonic()
            try:
                await self._connected(tasks, lost_since)
                why = "the controller ended the Status stream"
            except _Lost as lost:
                why = str(lost)
            except grpc.aio.AioRpcError as error:  # Register
                if _refused(error):
                    self.stop(
                        f"the controller at {self.address.endpoint} refused this exporter: {error.details()}: "
                        "check token: in the configuration (jmp admin create exporter writes a new one)",
                        EXIT_REFUSED,
                    )
                    return
                why = _describe(error)
            now = time.monotonic()
            if now - began > STABLE_SECONDS:
                delay = FIRST_DELAY_SECONDS
            if lost_since is None or now - began > STABLE_SECONDS:
                lost_since = now
                logger.warning(
                    "lost the controller at %s (%s): reconnecting, every %g s at most; the lease in progress "
                    "goes on through its router", self.address.endpoint, why, self._backoff_cap,
                )  # fmt: skip
            else:
                logger.debug("controller still unreachable (%s); again in %.2f s", why, delay)
            await anyio.sleep(delay)
            delay = min(delay * 2, self._backoff_cap)

    async def _connected(self, tasks: anyio.abc.TaskGroup, lost_since: float | None) -> None:
        async with controller_channel(self.address) as channel:
            stub = jumpstarter_pb2_grpc.ControllerServiceStub(channel)
            request = jumpstarter_pb2.RegisterRequest(labels=self._labels, reports=self._reports)
            await stub.Register(request, timeout=CALL_SECONDS)
            # Reports from before are stale: the controller hears the status as it is now.
            releases = [item for item in self._outbox if isinstance(item, _Release)]
            self._outbox = deque([*releases, _Report(self.leases.status.status, self.leases.status.message)])
            away = f" after {time.monotonic() - lost_since:.1f} s away" if lost_since is not None else ""
            logger.info("registered with the controller at %s%s", self.address.endpoint, away)
            broken: list[str] = []
            async with anyio.create_task_group() as connection:
                await self._flush(stub, broken, connection.cancel_scope)  # AVAILABLE before Status, as the original
                connection.start_soon(self._report, stub, broken, connection.cancel_scope)
                listening: tuple[str, anyio.CancelScope] | None = None
                try:
                    async for response in stub.Status(jumpstarter_pb2.StatusRequest()):
                        wanted = Lease(response.lease_name, response.client_name) if response.leased else None
                        if listening is not None and (wanted is None or wanted.name != listening[0]):
                            listening[1].cancel()
                            listening = None
                        if wanted is not None and listening is None:
                            scope = anyio.CancelScope()
                            connection.start_soon(self._listen, stub, wanted.name, scope, tasks)
                            listening = (wanted.name, scope)
                        self._wanted = wanted
                        self._nudge()
                except grpc.aio.AioRpcError as error:
                    broken.append(f"Status: {_describe(error)}")
                connection.cancel_scope.cancel()
            if broken:
                raise _Lost(broken[0])

    async def _flush(self, stub: jumpstarter_pb2_grpc.ControllerServiceStub, broken: list[str],
                     scope: anyio.CancelScope) -> None:  # fmt: skip
        """Send what the outbox holds, in order; a broken connection ends `scope`."""
        while self._outbox:
            item = self._outbox[0]
            try:
                if isinstance(item, _Report):
                    request = jumpstarter_pb2.ReportStatusRequest(status=item.status, message=item.message)
                    await stub.ReportStatus(request, timeout=CALL_SECONDS)
                    logger.debug("reported %s", status_name(item.status))
                else:
                    await self._release(stub, item.lease)
            except grpc.aio.AioRpcError as error:
                broken.append(f"{type(item).__name__.strip('_')}: {_describe(error)}")
                scope.cancel()
                return
            if self._outbox and self._outbox[0] is item:
                self._outbox.popleft()

    async def _release(self, stub: jumpstarter_pb2_grpc.ControllerServiceStub, lease: str) -> None:
        try:
            await stub.ReleaseLease(jumpstarter_pb2.ReleaseLeaseRequest(name=lease), timeout=CALL_SECONDS)
            logger.info("released lease %s", lease)
        except grpc.aio.AioRpcError as error:
            if error.code() not in _FINAL_CODES:
                raise
            logger.info("lease %s: the controller did not release it: %s", lease, error.details())

    async def _report(self, stub: jumpstarter_pb2_grpc.ControllerServiceStub, broken: list[str],
                      scope: anyio.CancelScope) -> None:  # fmt: skip
        while True:
            nudged = self._nudged
            await self._flush(stub, broken, scope)
            if not self._outbox:
                await nudged.wait()

    async def _listen(self, stub: jumpstarter_pb2_grpc.ControllerServiceStub, lease: str, scope: anyio.CancelScope,
                      tasks: anyio.abc.TaskGroup) -> None:  # fmt: skip
        """Open a tunnel for each Dial of `lease`, in `tasks` (the link's: tunnels outlive the connection)."""
        with scope:
            while True:
                try:
                    async for ticket in stub.Listen(jumpstarter_pb2.ListenRequest(lease_name=lease)):
                        tasks.start_soon(self._tunnel, lease, ticket.router_endpoint, ticket.router_token)
                except grpc.aio.AioRpcError as error:
                    if error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
                        logger.warning("lease %s: the controller refused Listen: %s", lease, error.details())
                    return  # a broken connection: the Status stream notices it too
                await anyio.sleep(FIRST_DELAY_SECONDS)  # the controller ended the stream: listen again

    # -- tunnels ----------------------------------------------------------------------------

    async def _tunnel(self, lease: str, endpoint: str, token: str) -> None:
        """One client connection: a router stream spliced to a new connection on the session's socket."""
        scope = anyio.CancelScope()
        self._tunnels.setdefault(lease, set()).add(scope)
        try:
            with scope:
                async with router_channel(endpoint, self.address) as channel:
                    call = router_pb2_grpc.RouterServiceStub(channel).Stream(
                        metadata=(("authorization", f"Bearer {token}"),)
                    )
                    frames = FrameStream(call, client_side=True)
                    try:
                        async with await connect_unix(self._socket) as local:
                            await splice(frames, local)
                    finally:
                        await frames.aclose()
        except Exception as error:  # a client that leaves ends its tunnel: not an error of the exporter
            logger.debug("lease %s: a connection through %s ended: %s", lease, endpoint, _first(error))
        finally:
            self._tunnels.get(lease, set()).discard(scope)

    def _end_tunnels(self, lease: str) -> None:
        for scope in self._tunnels.pop(lease, set()):
            scope.cancel()

    # -- leases -------------------------------------------------------------------------------

    async def _follow_leases(self) -> None:
        """Make the lease served the one the controller names (or none), one change at a time."""
        while True:
            nudged = self._nudged
            wanted, current = self._wanted, self.leases.lease
            if current is not None and (wanted is None or wanted.name != current.name):
                await self.leases.end_lease()
                self._end_tunnels(current.name)
                self._outbox.append(_Release(current.name))  # after its afterLease hook (the protocol's §4.7)
                self._nudge()
                continue
            for name in [name for name in self._tunnels if wanted is None or name != wanted.name]:
                self._end_tunnels(name)  # a lease that ended here (EndSession) keeps them until the controller ends it
            if current is None and self.draining:
                self.stop("the current lease ended after SIGHUP")
                return
            if wanted is not None and current is None and wanted.name not in self._begun:
                logger.info("lease %s of client %s: starting", wanted.name, wanted.client_name)
                self._begun.append(wanted.name)
                await self.leases.begin_lease(wanted.name, wanted.client_name)
                continue
            await nudged.wait()

    async def _watch_hooks(self) -> None:
        await self.leases.stopping.wait()
        self.stop(self.leases.stop_reason, EXIT_HOOK_FAILED)

    async def _say_goodbye(self) -> None:
        """OFFLINE and Unregister (after the reports and releases still owed), if the controller can be reached."""
        reason = self.stop_reason or "Exporter shutdown"
        try:
            with anyio.fail_after(GOODBYE_SECONDS):
                async with controller_channel(self.address) as channel:
                    stub = jumpstarter_pb2_grpc.ControllerServiceStub(channel)
                    broken: list[str] = []
                    await self._flush(stub, broken, anyio.CancelScope())  # what the stop cut short, a hook's failure
                    if broken:
                        raise _Lost(broken[0])
                    offline = jumpstarter_pb2.ReportStatusRequest(status=common_pb2.EXPORTER_STATUS_OFFLINE,
                                                                  message=reason[:1000])  # fmt: skip
                    await stub.ReportStatus(offline, timeout=GOODBYE_SECONDS)
                    await stub.Unregister(jumpstarter_pb2.UnregisterRequest(reason=reason[:1000]))
            logger.info("unregistered from the controller at %s", self.address.endpoint)
        except (grpc.aio.AioRpcError, _Lost, TimeoutError) as error:
            detail = _describe(error) if isinstance(error, grpc.aio.AioRpcError) else str(error) or "no answer"
            logger.warning("could not unregister from the controller at %s: %s", self.address.endpoint, detail)


async def serve_lab_until_signalled(
    link: ControllerLink,
    *,
    unix_path: str | None,
    tcp: TcpListener | None,
    on_ready: Callable[[Listening], None],
    say: Callable[[str], None],
) -> int:
    """Serve `link` until SIGTERM or SIGINT (stop), SIGHUP (drain), or its own end; the exit status.

    After the first SIGTERM or SIGINT, the same signal again ends the process at once.
    """
    raise_descriptor_limit()
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async with anyio.create_task_group() as tasks:

            async def follow_signals() -> None:
                async for number in signals:
                    name = signal.Signals(number).name
                    if number == signal.SIGHUP:
                        if not link.draining:
                            lease = link.leases.lease
                            what = f"lease {lease.name}" if lease is not None else "no lease in progress"
                            say(f"SIGHUP: no new lease; stopping once the current one ends ({what})")
                            link.drain()
                        continue
                    say(f"stopping ({name}); the same signal again stops at once")
                    link.stop(f"Exporter shutdown ({name})")
                    loop = asyncio.get_running_loop()
                    for again in (signal.SIGTERM, signal.SIGINT):
                        loop.add_signal_handler(again, exit_at_once, again, link.leases, say)
                    return

            tasks.start_soon(follow_signals)
            await link.serve(unix_path=unix_path, tcp=tcp, on_ready=on_ready)
            tasks.cancel_scope.cancel()
    if link.stop_reason and link.exit_code:
        say(link.stop_reason)
    return link.exit_code


def _refused(error: grpc.aio.AioRpcError) -> bool:
    """Whether the controller refused the exporter's identity (no retry can help)."""
    if error.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        return True
    return error.code() == grpc.StatusCode.UNKNOWN and "token" in (error.details() or "").lower()


def _describe(error: grpc.aio.AioRpcError) -> str:
    return f"{error.code().name}: {error.details()}" if error.details() else error.code().name


def _first(error: BaseException) -> str:
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return str(error) or type(error).__name__
