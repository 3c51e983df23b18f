"""`LeaseSessions`: a fresh driver session for each lease that a lab controller grants.

The controller link calls `LeaseSessions.begin_lease` when the controller leases the
exporter and `LeaseSessions.end_lease` when the lease ends. A lease's session is its own:
the drivers are built from the configuration and reset when the lease begins, and closed
when it ends, so nothing of one user's state reaches the next. Between leases there is no
session, and calls get `ExporterNotReady` (FAILED_PRECONDITION, "not ready"), as the
protocol says.

The status goes OFFLINE → AVAILABLE (entered) → (BEFORE_LEASE_HOOK →) LEASE_READY →
(AFTER_LEASE_HOOK →) AVAILABLE, with BEFORE_LEASE_HOOK_FAILED and AFTER_LEASE_HOOK_FAILED
when a hook fails, and OFFLINE again when the provider is left. GetStatus reports it, and
`on_status` hears every change (the controller link forwards them with ReportStatus). The
status that follows a hook (LEASE_READY, AVAILABLE or a ``*_FAILED``) carries the last 4 KiB
of the hook's output after its message's first line, for the lab's timeline.

Hooks run with the lease's session served on a private Unix socket of their own
(``JUMPSTARTER_HOST``). A hook's ``onFailure`` decides what its failure does: ``warn``
goes on; ``endLease`` ends the lease here (``on_release`` asks the link to release it
with ReleaseLease); ``exit`` also stops the exporter: `stopping` is set, with `stop_reason`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import anyio

from jumpstarter.common.exceptions import ExporterNotReady
from jumpstarter.config.exporter import HookConfig, HooksConfig
from jumpstarter.driver.base import Driver
from jumpstarter.exporter._hooks import HookFailure, HookKind, HookTail, run_hook
from jumpstarter.exporter._listeners import listen
from jumpstarter.exporter._provider import StatusBoard
from jumpstarter.exporter.session import STOP_GRACE_SECONDS, Session
from jumpstarter.v1 import common_pb2

__all__ = ["Lease", "LeaseSessions"]

logger = logging.getLogger(__name__)

# The states that follow a hook: the first of them carries the tail of the hook's output.
_AFTER_HOOK = (
    common_pb2.EXPORTER_STATUS_LEASE_READY,
    common_pb2.EXPORTER_STATUS_AVAILABLE,
    common_pb2.EXPORTER_STATUS_BEFORE_LEASE_HOOK_FAILED,
    common_pb2.EXPORTER_STATUS_AFTER_LEASE_HOOK_FAILED,
)
# The states in which the lease's session serves calls (the protocol's §3.1).
_SERVING = (
    common_pb2.EXPORTER_STATUS_BEFORE_LEASE_HOOK,
    common_pb2.EXPORTER_STATUS_LEASE_READY,
    common_pb2.EXPORTER_STATUS_AFTER_LEASE_HOOK,
)


def status_name(status: common_pb2.ExporterStatus) -> str:
    """``LEASE_READY`` for EXPORTER_STATUS_LEASE_READY."""
    return common_pb2.ExporterStatus.Name(status).removeprefix("EXPORTER_STATUS_")


@dataclass(frozen=True)
class Lease:
    """A lease this exporter serves: its name and the client holding it (the controller's names)."""

    name: str
    client_name: str = ""


class LeaseSessions(anyio.AsyncContextManagerMixin):
    """Serves the drivers that `build` creates, one tree per lease (a `SessionProvider`)."""

    def __init__(
        self,
        build: Callable[[], Driver],
        *,
        labels: Mapping[str, str] | None = None,
        hooks: HooksConfig | None = None,
        on_status: Callable[[common_pb2.ExporterStatus, str], None] | None = None,
        on_release: Callable[[Lease, str], None] | None = None,
        stop_grace: float | None = STOP_GRACE_SECONDS,
    ) -> None:
        """`on_release(lease, reason)`: the exporter ended `lease` itself (a hook's ``endLease``
        or ``exit``, or drivers that could not start), so the controller link should release it."""
        self._build = build
        self.labels = dict(labels or {})
        self._hooks = hooks or HooksConfig()
        self._on_release = on_release
        self._stop_grace = stop_grace
        self.status = StatusBoard(common_pb2.EXPORTER_STATUS_OFFLINE, "not started", observer=on_status)
        self.lease: Lease | None = None
        """The lease being served, from `begin_lease` to the end of `end_lease`."""
        self.stopping = anyio.Event()
        """Set when a hook's ``onFailure: exit`` stops the exporter; `stop_reason` says why."""
        self.stop_reason = ""
        self._session: Session | None = None
        self._session_stack: AsyncExitStack | None = None
        self._hook_output = ""  # the last hook's output, for the status that follows it
        self._lock = anyio.Lock()  # one lease begins or ends at a time

    @asynccontextmanager
    async def __asynccontextmanager__(self) -> AsyncIterator[LeaseSessions]:
        self._set(common_pb2.EXPORTER_STATUS_AVAILABLE, "waiting for a lease")
        try:
            yield self
        finally:
            with anyio.CancelScope(shield=True):
                await self.end_lease()
                self._set(common_pb2.EXPORTER_STATUS_OFFLINE, "stopped")

    # -- the controller link's API -----------------------------------------------------

    async def begin_lease(self, name: str, client_name: str = "") -> common_pb2.ExporterStatus:
        """Start serving the lease `name`: build and reset the drivers, run the beforeLease hook.

        Returns LEASE_READY, or BEFORE_LEASE_HOOK_FAILED when the hook failed with ``endLease``
        (the lease is ended, and the status AVAILABLE again) or ``exit`` (the status stays),
        or AVAILABLE when the drivers could not start (the lease is ended). Beginning the lease being served is a
        no-op; beginning another one first ends it.
        """
        async with self._lock:
            if self.lease is not None and self.lease.name == name:
                return self.status.status
        await self.end_lease()
        async with self._lock:
            if self.stopping.is_set():
                raise ExporterNotReady(f"the exporter is stopping: {self.stop_reason}")
            lease = Lease(name, client_name)
            self.lease = lease
            try:
                await self._start_session()
            except Exception as error:
                reason = f"the drivers could not start: {type(error).__name__}: {error}"
                logger.error("lease %s: %s", name, reason)
                self.lease = None
                self._set(common_pb2.EXPORTER_STATUS_AVAILABLE, reason)
                self._release(lease, reason)
                return self.status.status
            logger.info("lease %s of client %s began: drivers created", name, client_name or "?")
            failure = await self._run_hook("beforeLease", self._hooks.before_lease, lease)
            if failure is None or failure.on_failure == "warn":
                note = f" (after a warning: {failure.message})" if failure else ""
                self._set(common_pb2.EXPORTER_STATUS_LEASE_READY, f"serving lease {name}{note}")
                return self.status.status
            # The drivers may be in any state: no client gets them, and afterLease does not run.
            self._set(common_pb2.EXPORTER_STATUS_BEFORE_LEASE_HOOK_FAILED, failure.message)
            await self._close_session()
            self.lease = None
            self._fail(failure, lease)
            if failure.on_failure == "endLease":  # the lease is over; the next one may come
                self._set(common_pb2.EXPORTER_STATUS_AVAILABLE, f"waiting for a lease (last: {failure.message})")
            return common_pb2.EXPORTER_STATUS_BEFORE_LEASE_HOOK_FAILED

    async def end_lease(self) -> None:
        """Stop serving the current lease (if any): run the afterLease hook, close the drivers."""
        async with self._lock:
            lease = self.lease
            if lease is None:
                return
            with anyio.CancelScope(shield=True):  # a lease half ended would leave drivers open
                failure = await self._run_hook("afterLease", self._hooks.after_lease, lease)
                await self._close_session()
                self.lease = None
                logger.info("lease %s ended: drivers closed", lease.name)
                if failure is None or failure.on_failure == "warn":
                    note = f" (after a warning: {failure.message})" if failure else ""
                    self._set(common_pb2.EXPORTER_STATUS_AVAILABLE, f"waiting for a lease{note}")
                    return
                self._set(common_pb2.EXPORTER_STATUS_AFTER_LEASE_HOOK_FAILED, failure.message)
                if failure.on_failure == "exit":
                    self._fail(failure, None)
                else:  # endLease: the lease is over already; the next one may come
                    self._set(common_pb2.EXPORTER_STATUS_AVAILABLE, f"waiting for a lease (last: {failure.message})")

    # -- SessionProvider -----------------------------------------------------------------

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        session = self._session
        if session is None or self.status.status not in _SERVING:
            raise ExporterNotReady(self._not_ready())
        yield session

    def current_session(self) -> Session | None:
        return self._session

    async def end_session(self) -> tuple[bool, str]:
        """The lease's client is done (EndSession): end the lease here (its afterLease hook runs).

        Not released: the client that ended its session releases the lease itself (DeleteLease),
        as the original's does, once it has seen AVAILABLE through the same tunnel; a release from
        here would end the lease, and the tunnel with it, before the client could see that.
        """
        if self.lease is None:
            return False, "no lease is being served"
        await self.end_lease()
        return True, ""

    # -- internals -----------------------------------------------------------------------

    def _not_ready(self) -> str:
        status = status_name(self.status.status)
        why = f": {self.status.message}" if self.status.message else ""
        return f"the exporter is not ready (status: {status}){why}"

    def _set(self, status: common_pb2.ExporterStatus, message: str) -> None:
        if self._hook_output and status in _AFTER_HOOK:
            message, self._hook_output = f"{message}\n{self._hook_output}", ""
        self.status.update(status, message)
        logger.debug("status %s: %s", status_name(status), message)

    async def _start_session(self) -> None:
        stack = AsyncExitStack()
        root = self._build()
        # Entering resets the drivers; when a reset fails, the session closes what it had reset.
        self._session = await stack.enter_async_context(Session(root, stop_grace=self._stop_grace))
        self._session_stack = stack

    async def _close_session(self) -> None:
        stack, self._session_stack, self._session = self._session_stack, None, None
        if stack is not None:
            with anyio.CancelScope(shield=True):
                await stack.aclose()

    async def _run_hook(self, kind: HookKind, hook: HookConfig | None, lease: Lease) -> HookFailure | None:
        if hook is None:
            return None
        running = (
            common_pb2.EXPORTER_STATUS_BEFORE_LEASE_HOOK
            if kind == "beforeLease"
            else common_pb2.EXPORTER_STATUS_AFTER_LEASE_HOOK
        )
        self._set(running, f"running the {kind} hook of lease {lease.name}")
        tail = HookTail()
        try:
            async with listen(_HookView(self), private_unix=True) as listening:
                assert listening.unix_path is not None
                failure = await run_hook(
                    kind,
                    hook,
                    socket_path=listening.unix_path,
                    lease_name=lease.name,
                    client_name=lease.client_name,
                    tail=tail,
                )
        finally:
            output = tail.text()
            self._hook_output = f"{kind} hook output:\n{output}" if output else ""
        if failure is not None:
            level = logging.WARNING if failure.on_failure == "warn" else logging.ERROR
            logger.log(level, "%s (onFailure: %s)", failure.message, failure.on_failure)
        return failure

    def _fail(self, failure: HookFailure, lease: Lease | None) -> None:
        if lease is not None:
            self._release(lease, failure.message)
        if failure.on_failure == "exit":
            self.stop_reason = f"{failure.message}, and its onFailure is exit: the exporter stops"
            logger.error("%s", self.stop_reason)
            self.stopping.set()

    def _release(self, lease: Lease, reason: str) -> None:
        if self._on_release is not None:
            self._on_release(lease, reason)


class _HookView:
    """The lease's session for its hooks, on their private socket: whatever the status, while
    the session exists (the listener neither starts nor ends it)."""

    def __init__(self, leases: LeaseSessions) -> None:
        self._leases = leases
        self.labels = leases.labels

    @property
    def status(self) -> StatusBoard:
        return self._leases.status

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        session = self._leases.current_session()
        if session is None:
            raise ExporterNotReady("the lease's session has ended")
        yield session

    def current_session(self) -> Session | None:
        return self._leases.current_session()

    async def end_session(self) -> tuple[bool, str]:
        return False, "a hook cannot end its lease"

    async def __aenter__(self) -> _HookView:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None
