"""Leasing an exporter from a lab controller, and reaching it through the router.

    with lease(selector="board=rpi4", duration=1800) as client:   # the same client as connect()
        client.power.on()

    async with lease_async(selector="board=rpi4") as client:
        await client.power.call_async("on")

`LeaseSession` is the part under them (and under `jmp shell --selector`): it creates the lease
(or takes an existing one), waits until it is ready, serves the tunnel to its exporter on a
Unix socket, waits until the exporter is ready too (its beforeLease hook done, see
`jumpstarter.client.readiness`), keeps the lease alive, and releases the lease it created on
the way out.

Waiting is event driven against our controller (a long poll on GetLease that answers when
the lease changes), and polls every POLL_SECONDS against one that does not offer it.

A lease this client creates is held in short steps: it is created for at most HOLD_SECONDS
and extended (UpdateLease, as `jmp update lease` does) while the client lives, up to the
duration asked for. So a client killed with SIGKILL, which cannot release anything, leaves
its exporter free HOLD_SECONDS later at the latest, not at the end of the whole duration.
`jmp update lease` asks the holder to step further (`jumpstarter.client.holding`) rather than
moving the lease's end at the controller, so an extended lease keeps that guard.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from os import PathLike

import anyio
from anyio.from_thread import BlockingPortal

from jumpstarter.client.base import DriverClient
from jumpstarter.client.classes import ClientClassPolicy
from jumpstarter.client.connect import (
    ANSWER_TIMEOUT_SECONDS,
    OpenClient,
    async_client,
    blocking_client,
    connect_endpoint_async,
)
from jumpstarter.client.endpoint import ExporterEndpoint
from jumpstarter.client.holding import hold_control
from jumpstarter.client.lab import LabClient, LabError, is_ready, lease_failure
from jumpstarter.client.readiness import ended_error, wait_until_ready
from jumpstarter.client.tunnel import tunnel
from jumpstarter.client.v1 import client_pb2
from jumpstarter.config.client import ClientConfig, resolve_client
from jumpstarter.config.durations import format_duration

__all__ = ["LeaseSession", "lease", "lease_async"]

logger = logging.getLogger(__name__)

DEFAULT_DURATION_SECONDS = 1800.0
# The long poll's bound per call, and the polling period against a controller without it.
WAIT_SECONDS = 20.0
POLL_SECONDS = 1.0
# How far ahead a lease this client created is held; it is extended every HOLD_SECONDS / 3.
HOLD_SECONDS = 30.0
# How long before its end a lease warns (at most; a short lease warns at half its duration).
WARN_SECONDS = 300.0


def selector_text(selector: str | Iterable[str] | dict[str, str]) -> str:
    """One label selector from ``"k=v,k2=v2"``, several ``"k=v"`` (the -l options) or a mapping."""
    if isinstance(selector, dict):
        return ",".join(f"{key}={value}" for key, value in selector.items())
    if isinstance(selector, str):
        return selector.strip()
    return ",".join(part.strip() for part in selector if part.strip())


@dataclass
class LeaseSession:
    """A lease being held, with the tunnel to its exporter (see the module's documentation)."""

    lab: LabClient
    name: str
    created: bool
    duration: float
    socket: str = ""
    lease: client_pb2.Lease = field(default_factory=client_pb2.Lease)
    ended: anyio.Event = field(default_factory=anyio.Event)
    end_reason: str = ""
    _changed: anyio.Event = field(default_factory=anyio.Event)
    ready: anyio.Event = field(default_factory=anyio.Event)
    """Set once the exporter is ready for the lease's client (LEASE_READY)."""
    _readying: anyio.CancelScope | None = None  # the wait for the exporter

    @property
    def exporter(self) -> str:
        return self.lease.exporter.rsplit("/", 1)[-1]

    @property
    def ends_at(self) -> float | None:
        """When the lease ends (seconds since the epoch), once it has begun."""
        if not self.lease.HasField("effective_begin_time"):
            return None
        return self.lease.effective_begin_time.ToSeconds() + self.duration

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        config: ClientConfig,
        *,
        selector: str = "",
        duration: float = DEFAULT_DURATION_SECONDS,
        name: str | None = None,
        exporter_name: str = "",
        acquisition_timeout: float | None = None,
        on_waiting: Callable[[client_pb2.Lease], None] | None = None,
        on_warning: Callable[[float], None] | None = None,
        on_end: Callable[[str], None] | None = None,
    ) -> AsyncIterator[LeaseSession]:
        """Lease (or take the lease `name`), wait until ready, serve the tunnel; release on exit.

        `on_waiting` is told of the lease once, if it has to wait; `on_warning` the seconds left,
        WARN_SECONDS (or half the duration) before the end; `on_end` why the lease ended, when
        it ends while held. LabError for every refusal; TimeoutError if not ready in time;
        HookFailed (a LabError) when the exporter's beforeLease hook failed.
        """
        if duration <= 0 or not math.isfinite(duration):
            raise LabError(f"the lease duration must be a positive number of seconds, not {duration}")
        if not name and not selector and not exporter_name:
            raise LabError("give a selector (-l key=value) or the name of an existing lease (--lease NAME)")
        not_ready: LabError | None = None
        timeout = acquisition_timeout if acquisition_timeout is not None else float(config.leases.acquisition_timeout)
        async with AsyncExitStack() as stack:
            lab = await stack.enter_async_context(LabClient.open(config))
            if name:
                session = cls(lab, name, created=False, duration=duration, lease=await lab.get_lease(name))
                if session.lease.HasField("duration"):
                    session.duration = session.lease.duration.ToTimedelta().total_seconds()
            else:
                first = min(duration, HOLD_SECONDS)
                created = await lab.create_lease(selector, first, exporter_name=exporter_name)
                session = cls(lab, created.name.rsplit("/", 1)[-1], created=True, duration=duration, lease=created)
                stack.push_async_callback(session._release)
            with anyio.fail_after(timeout):
                await session._acquire(on_waiting)
            if session.created:  # after the wait: a task group (the socket's) would wrap its errors in a group
                await stack.enter_async_context(hold_control(session.name, session.extend))
            session.socket = await stack.enter_async_context(tunnel(lab, session.name, session.ready))
            tasks = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(tasks.cancel_scope.cancel)
            tasks.start_soon(session._keep, on_warning, on_end)
            try:
                await session._until_ready()
            except LabError as error:
                not_ready = error  # raised once out of the task group, which would wrap it in a group
            else:
                yield session
        if not_ready is not None:
            raise not_ready

    async def _until_ready(self) -> None:
        """Wait until the exporter is ready for us (its beforeLease hook done), while the lease lasts."""
        with anyio.CancelScope() as self._readying:
            await wait_until_ready(self.lab, self.name, self.exporter, self.socket)
            self.ready.set()
            return
        raise ended_error(self.exporter, self.name, self.end_reason, self.lease)

    async def _acquire(self, on_waiting: Callable[[client_pb2.Lease], None] | None) -> None:
        told = False
        while True:
            failure = lease_failure(self.lease)
            if failure is not None:
                raise LabError(failure)
            if is_ready(self.lease):
                return
            if not told and on_waiting is not None:
                on_waiting(self.lease)
                told = True
            self.lease, waited = await self.lab.wait_lease(self.name, WAIT_SECONDS)
            if not waited and not is_ready(self.lease):
                await anyio.sleep(POLL_SECONDS)

    async def _keep(self, on_warning: Callable[[float], None] | None, on_end: Callable[[str], None] | None) -> None:
        """Extend the lease we created, warn before its end, and notice when it ends."""
        warned = False
        while True:
            now = time.time()
            ends_at = self.ends_at or now + self.duration
            left = ends_at - now
            warn_before = min(WARN_SECONDS, self.duration / 2)
            if not warned and left <= warn_before:
                warned = True
                if on_warning is not None:
                    on_warning(left)
            if left <= 0:
                self._end("its time is up", on_end)
                return
            try:
                self.lease = await self._extended(now)
            except LabError as error:
                if await self._ended_elsewhere(on_end):
                    return
                logger.warning("cannot check or extend lease %s: %s", self.name, error)
            else:
                failure = lease_failure(self.lease)
                if failure is not None:
                    self._end(failure, on_end)
                    return
                if self._follow_extension():
                    warned = False
            step = HOLD_SECONDS / 3
            wake = min(now + step, ends_at) if warned else min(now + step, ends_at - warn_before, ends_at)
            with anyio.move_on_after(max(0.0, wake - time.time())):
                await self._changed.wait()
            if self._changed.is_set():  # extended through the control socket: count again, warn again
                self._changed = anyio.Event()
                warned = False

    async def _ended_elsewhere(self, on_end: Callable[[str], None] | None) -> bool:
        """After a refused extension: whether the lease has ended elsewhere (its exporter released it...).

        If so, the lease ends here too."""
        try:
            lease = await self.lab.get_lease(self.name)
        except LabError:
            return False
        failure = lease_failure(lease)
        if failure is None:
            return False
        self.lease = lease
        self._end(failure, on_end)
        return True

    async def extend(self, duration: float) -> None:
        """Hold the lease up to `duration` seconds in all (jmp update lease, through the control socket)."""
        if duration <= 0 or not math.isfinite(duration):
            raise LabError(f"the lease duration must be a positive number of seconds, not {duration}")
        if duration < self.duration - 1e-3:
            earlier = format_duration(self.duration - duration)
            raise LabError(f"this would shorten lease {self.name} (ending {earlier} earlier): "
                           "a lease is only extended; release it (jmp delete lease) to end it early")  # fmt: skip
        before = self.duration
        self.duration = duration
        try:
            self.lease = await self._extended(time.time())
        except LabError:
            self.duration = before
            raise
        self._changed.set()

    def _follow_extension(self) -> bool:
        """Take up a longer duration given elsewhere (jmp update lease); whether there was one."""
        held = self.lease.duration.ToTimedelta().total_seconds() if self.lease.HasField("duration") else 0.0
        if held > self.duration + 1.0:
            if self.created:
                # Extended at the controller, not through this holder (from another machine, or by the
                # original's client): the controller now keeps the lease to its end even if we die.
                logger.warning("lease %s was extended at the controller: it is held to its end, even if this "
                               "client is killed", self.name)  # fmt: skip
            self.duration = held
            return True
        return False

    async def _extended(self, now: float) -> client_pb2.Lease:
        held = self.lease.duration.ToTimedelta().total_seconds() if self.lease.HasField("duration") else 0.0
        begin = self.lease.effective_begin_time.ToSeconds() if self.lease.HasField("effective_begin_time") else now
        wanted = min(self.duration, (now - begin) + HOLD_SECONDS)
        if self.created and wanted > held + 1.0:
            return await self.lab.update_lease(self.name, math.ceil(wanted))
        return await self.lab.get_lease(self.name)

    def _end(self, reason: str, on_end: Callable[[str], None] | None) -> None:
        self.end_reason = reason
        self.ended.set()
        if not self.ready.is_set():  # not yet in use: the wait for the exporter says why
            if self._readying is not None:
                self._readying.cancel()
        elif on_end is not None:
            on_end(reason)

    async def _release(self) -> None:
        with anyio.CancelScope(shield=True), anyio.move_on_after(10):
            try:
                await self.lab.delete_lease(self.name)
            except LabError as error:
                if "already been released" not in str(error):
                    logger.warning("cannot release lease %s: %s", self.name, error)


def _config(config: ClientConfig | None, client: str | None, client_config: str | PathLike[str] | None) -> ClientConfig:
    return config if config is not None else resolve_client(client, client_config).config


def _opener(
    selector: str | Iterable[str] | dict[str, str],
    duration: float,
    name: str | None,
    config: ClientConfig | None,
    client: str | None,
    client_config: str | PathLike[str] | None,
    allow: Iterable[str],
    unsafe: bool,
    answer_timeout: float,
) -> OpenClient:
    resolved = _config(config, client, client_config)
    policy = ClientClassPolicy.default([*resolved.drivers.allow, *allow], unsafe or resolved.drivers.unsafe)

    @asynccontextmanager
    async def open_client(portal: BlockingPortal, stack: ExitStack) -> AsyncIterator[DriverClient]:
        async with (
            LeaseSession.open(resolved, selector=selector_text(selector), duration=duration, name=name) as session,
            connect_endpoint_async(
                ExporterEndpoint(session.socket), portal=portal, stack=stack, policy=policy, attach=True,
                answer_timeout=answer_timeout,
            ) as root,
        ):  # fmt: skip
            yield root

    return open_client


@contextmanager
def lease(
    selector: str | Iterable[str] | dict[str, str] = "",
    *,
    duration: float = DEFAULT_DURATION_SECONDS,
    name: str | None = None,
    config: ClientConfig | None = None,
    client: str | None = None,
    client_config: str | PathLike[str] | None = None,
    allow: Iterable[str] = (),
    unsafe: bool = False,
    answer_timeout: float = ANSWER_TIMEOUT_SECONDS,
) -> Iterator[DriverClient]:
    """Lease an exporter matching `selector` for `duration` seconds; yield its root client.

    The client configuration is `config`, else the one `--client NAME`, `--client-config FILE`
    and the JMP_* variables would choose (`resolve_client`). With `name`, the existing lease of
    that name is used and left as it is; otherwise the lease is created here and released on
    exit. The root client is yielded once the exporter is ready (after its beforeLease hook).
    Raises LabError (refused, unsatisfiable, ended), HookFailed (a LabError: the exporter's
    beforeLease hook failed) or TimeoutError (not ready within the configuration's acquisition
    timeout).
    """
    opener = _opener(selector, duration, name, config, client, client_config, allow, unsafe, answer_timeout)
    with blocking_client(opener) as root:
        yield root


@asynccontextmanager
async def lease_async(
    selector: str | Iterable[str] | dict[str, str] = "",
    *,
    duration: float = DEFAULT_DURATION_SECONDS,
    name: str | None = None,
    config: ClientConfig | None = None,
    client: str | None = None,
    client_config: str | PathLike[str] | None = None,
    allow: Iterable[str] = (),
    unsafe: bool = False,
    answer_timeout: float = ANSWER_TIMEOUT_SECONDS,
) -> AsyncIterator[DriverClient]:
    """Async twin of `lease`, on the current event loop."""
    opener = _opener(selector, duration, name, config, client, client_config, allow, unsafe, answer_timeout)
    async with async_client(opener) as root:
        yield root
