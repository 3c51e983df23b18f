"""`Controller`: the one active process's state, its changes and the events that follow them.

Every change runs inside `change()`: under one lock, the model is changed and the change
joins the open batch; `run_writer`, a task of its own, takes one batch after the other. The
calls of a batch are answered together (group commit): the scheduler runs once over the batch
(so a free exporter is assigned before the call that freed or asked for it answers), every
touched record and the audit events are written in one database transaction, and only then
are the callers answered and the waiting streams (an exporter's Status, a client's Dial)
woken. While one batch is written, the next one gathers. If a write fails, the model is
rebuilt from the database and every call of the batch fails: no call is ever answered with
what the database lacks.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from jumpstarter_controller.config import ControllerConfig
from jumpstarter_controller.credentials import Identity, TokenError, TokenVerifier
from jumpstarter_controller.model import Client, Exporter, Model
from jumpstarter_controller.scheduler import Changes, Event, next_deadline, schedule
from jumpstarter_controller.store import Store

__all__ = ["ChangeNotWritten", "Controller", "ListenTicket"]

logger = logging.getLogger(__name__)

# A Listen stream's buffer of dial tickets (the original's is 8 too).
LISTEN_BUFFER = 8
# last_seen is kept in memory and written at most this often (it changes every 10 s per exporter).
LAST_SEEN_FLUSH_SECONDS = 30.0


class ChangeNotWritten(RuntimeError):
    """A change could not be written to the database (so it was undone)."""


@dataclass(eq=False)
class _Batch:
    """The changes of the calls answered together, after one scheduler pass and one transaction."""

    changes: Changes = field(default_factory=Changes)
    done: anyio.Event = field(default_factory=anyio.Event)
    error: BaseException | None = None


@dataclass(frozen=True)
class ListenTicket:
    router_endpoint: str
    router_token: str


class Controller:
    def __init__(self, store: Store, model: Model, config: ControllerConfig, verifier: TokenVerifier) -> None:
        self.store = store
        self.model = model
        self.config = config
        self.verifier = verifier
        self._lock = anyio.Lock()  # held while the model changes (never across a database write)
        self._write_lock = anyio.Lock()  # held while a batch is written: batches are written one at a time, in order
        self._batch: _Batch | None = None  # the changes not yet being written
        self._pending = anyio.Event()  # set when there is a batch for `run_writer`
        self._stopped = False  # `run_writer` ended: no change is written any more
        self._wake = anyio.Event()
        self._exporter_events: dict[tuple[str, str], anyio.Event] = {}
        # One Listen per lease: the newest supersedes the older (whose scope is cancelled).
        self._listeners: dict[tuple[str, str], tuple[MemoryObjectSendStream[ListenTicket], anyio.CancelScope]] = {}
        self._last_flush = time.monotonic()
        # Told of every change once it is written (the dashboard's live view); must not block.
        self.watchers: list[Callable[[Changes], None]] = []

    @classmethod
    async def open(cls, store: Store, config: ControllerConfig, verifier: TokenVerifier) -> Controller:
        """The controller of the state in `store`: after a restart or a failover, its started leases
        whose time ran out meanwhile last `config.limits.restart_grace` more (`Model.hold_after_restart`)."""
        model = await store.load()
        grace = config.limits.restart_grace
        held = model.hold_after_restart(time.time(), grace)
        if held:
            logger.info("%d started leases ran out of time while the controller was away: held %g s more for their "
                        "holders to extend them (limits.restart_grace)", len(held), grace)  # fmt: skip
        return cls(store, model, config, verifier)

    @property
    def stopping(self) -> bool:
        """No change is written any more: the controller is shutting down."""
        return self._stopped

    # -- changes -------------------------------------------------------------------------------

    @asynccontextmanager
    async def change(self) -> AsyncIterator[Changes]:
        """Change the model; on leaving, wait until the change is scheduled, written and announced.

        Calls that change the model while an earlier batch is being written join the next
        batch (group commit): each batch gets one scheduler pass and one transaction, and
        every call in it is answered once that transaction committed. A LookupError or
        ValueError (a refused request) must be raised before the body changes anything; any
        other failure of a body, or of a write, rebuilds the model from the database, and
        every call of the batch it hit fails too (their changes were never written)."""
        await self._lock.acquire()
        locked = True
        try:
            changes = Changes()
            try:
                yield changes
            except (LookupError, ValueError):
                raise  # refused before it changed anything: nothing to undo
            except BaseException as error:
                self._lock.release()
                locked = False
                with anyio.CancelScope(shield=True):
                    await self._discard_unwritten(error)
                raise
            if self._batch is None:
                self._batch = _Batch()
            batch = self._batch
            batch.changes.merge(changes)
        finally:
            if locked:
                self._lock.release()
        # Written by `run_writer`, in a task of its own: a caller that goes away (gRPC cancels the
        # handler of a cancelled call) stops waiting, and the batch, with other calls' changes, is still written.
        if self._stopped:
            self._fail_open_batch(RuntimeError("the controller is stopping"))
        self._pending.set()
        await batch.done.wait()
        if batch.error is not None:
            raise ChangeNotWritten(f"the change was not written to the database: {_describe(batch.error)}") from (
                batch.error
            )

    async def run_writer(self) -> None:
        """Schedule and write each batch in one transaction, one batch after the other (runs until cancelled)."""
        try:
            while True:
                await self._pending.wait()
                self._pending = anyio.Event()
                batch = self._batch
                if batch is None:
                    continue
                with anyio.CancelScope(shield=True):  # a batch begun is finished, also when the controller stops
                    async with self._write_lock:
                        await self._write(batch)
        finally:
            self._stopped = True
            self._fail_open_batch(RuntimeError("the controller is stopping"))

    def _fail_open_batch(self, error: BaseException) -> None:
        if self._batch is not None:
            self._batch.error = error
            self._batch.done.set()
            self._batch = None

    async def _write(self, batch: _Batch) -> None:
        try:
            async with self._lock:
                if batch is not self._batch:  # failed meanwhile (a change that broke discarded it)
                    return
                self._batch = None  # calls from now on join the next batch
                try:
                    schedule(self.model, batch.changes, time.time())
                    rows = self.store.rows(self.model, batch.changes) if batch.changes.dirty() else None
                except Exception as error:
                    batch.error = error
                    await self._reload()
                    return
            try:
                if rows is not None:
                    await self.store.write_rows(rows)
            except Exception as error:
                batch.error = error
                logger.error("cannot write to the database: %s", _describe(error))
                await self._discard_unwritten(error, holding_write_lock=True)
                return
            self._announce(batch.changes)
        finally:
            batch.done.set()

    async def _discard_unwritten(self, error: BaseException, *, holding_write_lock: bool = False) -> None:
        """Rebuild the model from the database; the open batch (built on what was lost) fails with `error`."""
        if not holding_write_lock:
            async with self._write_lock:  # a batch being written lands first, or the reload would miss it
                return await self._discard_unwritten(error, holding_write_lock=True)
        async with self._lock:
            await self._reload()
            self._fail_open_batch(error)

    async def _reload(self) -> None:
        streams = {key: e.streams for key, e in self.model.exporters.items()}
        held = {key: lease.held_until for key, lease in self.model.leases.items() if lease.held_until}
        with anyio.CancelScope(shield=True):
            self.model = await self.store.load()
        for key, count in streams.items():
            if key in self.model.exporters:
                self.model.exporters[key].streams = count
        for key, until in held.items():  # what is in memory only survives a reload
            if key in self.model.leases:
                self.model.leases[key].held_until = until

    def _announce(self, changes: Changes) -> None:
        for key in {*changes.exporters, *changes.deleted_exporters}:
            self.notify_exporter(key)
        for lease in changes.leases.values():
            if lease.exporter:
                self.notify_exporter((lease.namespace, lease.exporter))
            if lease.ended:
                self._drop_listener(lease.key)
        self._wake.set()
        for watch in list(self.watchers):
            watch(changes)

    def notify_exporter(self, key: tuple[str, str]) -> None:
        event = self._exporter_events.pop(key, None)
        if event is not None:
            event.set()

    async def wait_exporter(self, key: tuple[str, str], seconds: float) -> None:
        """Wait until something about exporter `key` (or its lease) changes, or `seconds` pass."""
        event = self._exporter_events.setdefault(key, anyio.Event())
        with anyio.move_on_after(seconds):
            await event.wait()

    async def run_timers(self) -> None:
        """End leases at their end time and start scheduled ones at their begin time; flush last_seen."""
        while True:
            deadline = next_deadline(self.model)
            wait = 1.0 if deadline is None else min(1.0, max(0.0, deadline - time.time()))
            with anyio.move_on_after(wait):
                await self._wake.wait()
            self._wake = anyio.Event()
            flush = time.monotonic() - self._last_flush >= LAST_SEEN_FLUSH_SECONDS
            if flush or (deadline is not None and deadline <= time.time()):
                try:
                    async with self.change() as changes:
                        if flush:
                            self._last_flush = time.monotonic()
                            for exporter in self.model.exporters.values():
                                if exporter.streams:
                                    changes.exporter(exporter)
                except Exception:  # the database is away: try again on the next tick
                    logger.exception("cannot write the scheduled changes")

    # -- identities ----------------------------------------------------------------------------

    def identify(self, token: str, kind: str | None = None) -> Identity:
        """The identity behind `token`, still existing with that token's version; TokenError otherwise."""
        identity = self.verifier.verify(token)
        if kind is not None and identity.kind != kind:
            raise TokenError(f"this call is for {kind}s, and the token is a {identity.kind}'s")
        key = (identity.namespace, identity.name)
        if identity.kind == "admin":
            return identity
        record: Client | Exporter | None = (
            self.model.clients.get(key) if identity.kind == "client" else self.model.exporters.get(key)
        )
        if record is None or record.token_version != identity.version:
            raise TokenError(
                f"the {identity.kind} {identity.namespace}/{identity.name} was deleted or its token rotated: "
                "ask the administrator for a new token"
            )
        return identity

    # -- Listen queues -------------------------------------------------------------------------

    def open_listener(self, key: tuple[str, str]) -> tuple[MemoryObjectReceiveStream[ListenTicket], anyio.CancelScope]:
        self._drop_listener(key)
        send, receive = anyio.create_memory_object_stream[ListenTicket](LISTEN_BUFFER)
        scope = anyio.CancelScope()
        self._listeners[key] = (send, scope)
        return receive, scope

    def close_listener(self, key: tuple[str, str], scope: anyio.CancelScope) -> None:
        current = self._listeners.get(key)
        if current is not None and current[1] is scope:
            del self._listeners[key]
            current[0].close()

    def _drop_listener(self, key: tuple[str, str]) -> None:
        current = self._listeners.pop(key, None)
        if current is not None:
            current[0].close()
            current[1].cancel()

    def has_listener(self, key: tuple[str, str]) -> bool:
        return key in self._listeners

    def deliver(self, key: tuple[str, str], ticket: ListenTicket) -> bool:
        """Hand `ticket` to the lease's Listen stream; False when its buffer is full."""
        current = self._listeners.get(key)
        if current is None:
            return False
        try:
            current[0].send_nowait(ticket)
        except anyio.WouldBlock:
            return False
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            return False
        return True

    # -- admin -------------------------------------------------------------------------------

    async def create_client(self, namespace: str, name: str, labels: dict[str, str], who: str) -> Client:
        async with self.change() as changes:
            if (namespace, name) in self.model.clients:
                raise ValueError(f"client {namespace}/{name} exists already (rotate its token: jmp admin rotate)")
            client = Client(namespace, name, labels)
            self.model.clients[client.key] = client
            changes.clients.add(client.key)
            changes.event(Event(who, "client created", namespace, client=name, why=f"labels {labels}"))
        return client

    async def create_exporter(self, namespace: str, name: str, labels: dict[str, str], who: str) -> Exporter:
        async with self.change() as changes:
            if (namespace, name) in self.model.exporters:
                raise ValueError(f"exporter {namespace}/{name} exists already (rotate its token: jmp admin rotate)")
            exporter = Exporter(namespace, name, str(uuid.uuid4()), labels)
            self.model.exporters[exporter.key] = exporter
            changes.exporter(exporter)
            changes.event(Event(who, "exporter created", namespace, exporter=name, why=f"labels {labels}"))
        return exporter

    async def rotate(self, kind: str, namespace: str, name: str, who: str) -> int:
        async with self.change() as changes:
            if kind == "client":
                client = self._client(namespace, name)
                client.token_version += 1
                changes.clients.add(client.key)
                version = client.token_version
            else:
                exporter = self._exporter(namespace, name)
                exporter.token_version += 1
                changes.exporter(exporter)
                version = exporter.token_version
            changes.event(Event(who, f"{kind} token rotated", namespace, why="the old token stops working",
                                **{kind: name}))  # fmt: skip
        return version

    async def delete(self, kind: str, namespace: str, name: str, who: str) -> None:
        from jumpstarter_controller.scheduler import end_lease

        async with self.change() as changes:
            now = time.time()
            if kind == "client":
                self._client(namespace, name)
                for lease in self.model.active_leases():
                    if lease.namespace == namespace and lease.client == name:
                        end_lease(self.model, changes, lease, "Released", "its client was deleted", now, who)
                del self.model.clients[(namespace, name)]
                changes.deleted_clients.add((namespace, name))
            else:
                exporter = self._exporter(namespace, name)
                if exporter.lease is not None:
                    lease = self.model.leases[(namespace, exporter.lease)]
                    end_lease(self.model, changes, lease, "Released", "its exporter was deleted", now, who)
                del self.model.exporters[(namespace, name)]
                changes.deleted_exporters.add((namespace, name))
                changes.exporters.pop((namespace, name), None)
            changes.event(Event(who, f"{kind} deleted", namespace, why="its tokens stop working", **{kind: name}))

    async def set_enabled(self, namespace: str, name: str, enabled: bool, who: str, via: str) -> bool:
        """Enable an exporter, or disable (drain) it: it keeps its current lease to the end, and the
        scheduler gives it no new one. The one path of `jmp admin enable|disable` and the dashboard;
        an event records who did it, and `via` what. False when it was so already (nothing recorded)."""
        async with self.change() as changes:
            exporter = self._exporter(namespace, name)
            if exporter.enabled == enabled:
                return False
            exporter.enabled = enabled
            changes.exporter(exporter)
            what = "exporter enabled" if enabled else "exporter disabled"
            why = "takes new leases again" if enabled else "finishes its current lease, takes no new one"
            changes.event(Event(who, what, namespace, exporter.lease or "", name, "", f"{via}: {why}"))
        return True

    def _client(self, namespace: str, name: str) -> Client:
        client = self.model.clients.get((namespace, name))
        if client is None:
            raise LookupError(f"there is no client {namespace}/{name}")
        return client

    def _exporter(self, namespace: str, name: str) -> Exporter:
        exporter = self.model.exporters.get((namespace, name))
        if exporter is None:
            raise LookupError(f"there is no exporter {namespace}/{name}")
        return exporter


def _describe(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:300]}" if text else type(error).__name__
