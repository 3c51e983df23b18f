"""The dashboard's one window on the controller: snapshots of its model, its changes, its actions.

Everything the dashboard reads or does goes through `Lab`, so the rest of the dashboard never
touches the controller's internals. Snapshots are plain rows made from the in-memory model
(never a database query per page); the change feed comes from `Controller.watchers`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio

from jumpstarter_controller.controller import Controller
from jumpstarter_controller.credentials import Identity
from jumpstarter_controller.model import Exporter, Lease
from jumpstarter_controller.scheduler import Changes, end_lease
from jumpstarter_controller.selectors import parse

__all__ = ["ClientRow", "ExporterRow", "Lab", "LeaseRow", "StatusChange", "Touched", "status_name"]

STATUS_NAMES = {
    0: "unspecified", 1: "offline", 2: "available", 3: "before-lease-hook", 4: "lease-ready",
    5: "after-lease-hook", 6: "before-lease-hook-failed", 7: "after-lease-hook-failed",
}  # fmt: skip
HOOK_STATUSES = {3: "before_lease", 5: "after_lease"}
HOOK_FAILED = {6: "before_lease", 7: "after_lease"}
HISTORY = 200  # status changes kept per exporter (in memory: the timeline's recent past)
TOUCHED = 256  # versions whose touched exporters and leases are remembered (for the pages' row diffs)
NEWEST_FIRST = 10**19  # minus a lease's creation in microseconds: an order string that sorts newest first


def status_name(exporter: Exporter) -> str:
    if exporter.streams == 0 or exporter.status == 1:
        return "offline"
    return STATUS_NAMES.get(exporter.status, "unspecified")


@dataclass(frozen=True)
class StatusChange:
    at: float
    status: str
    message: str
    hook: str = ""
    """The hook (before_lease, after_lease) whose run this status ends: its message is the hook's output."""


@dataclass(frozen=True)
class ExporterRow:
    namespace: str
    name: str
    labels: dict[str, str]
    status: str
    message: str
    online: bool
    last_seen: float
    enabled: bool
    lease: str | None
    client: str | None
    until: float | None
    waiting: int

    @property
    def order(self) -> str:
        """Its place on the exporters page, as a string that sorts ascending (the page's script compares
        these): namespace, then name. The space sorts before every character a name may hold, so this
        is the order of (namespace, name)."""
        return f"{self.namespace} {self.name}"


@dataclass(frozen=True)
class LeaseRow:
    namespace: str
    name: str
    client: str
    selector: str
    exporter: str | None
    state: str
    """active, pending or ended."""
    position: str
    """The Pending condition's message (its place in line), or the end reason."""
    created: float
    begin: float | None
    until: float | None
    reason: str

    @property
    def order(self) -> str:
        """Its place on the leases page, as a string that sorts ascending: newest first (`lease_order`)."""
        return lease_order(self.created, self.namespace, self.name)


def lease_order(created: float, namespace: str, name: str) -> str:
    """Newest first, then by namespace and name: the leases' order on the pages and in their row diffs."""
    return f"{NEWEST_FIRST - round(created * 1e6):020d} {namespace} {name}"


@dataclass(frozen=True)
class Touched:
    """The exporters and leases whose rows a run of changes may have altered."""

    exporters: set[tuple[str, str]]
    leases: set[tuple[str, str]]


@dataclass(frozen=True)
class ClientRow:
    namespace: str
    name: str
    labels: dict[str, str]
    leases: int


@dataclass
class _Tracker:
    """What the controller does not keep: status history and when things started (for metrics)."""

    history: dict[tuple[str, str], deque[StatusChange]] = field(default_factory=dict)
    last: dict[tuple[str, str], tuple[int, float, str]] = field(default_factory=dict)
    ready_seen: set[tuple[str, str]] = field(default_factory=set)
    touched: deque[tuple[int, frozenset[tuple[str, str]], frozenset[tuple[str, str]]]] = field(
        default_factory=lambda: deque(maxlen=TOUCHED)
    )


class Lab:
    """Read the controller's state, follow its changes, act on it (as a named user)."""

    def __init__(self, controller: Controller) -> None:
        self._controller = controller
        self._tracker = _Tracker()
        self._changed = anyio.Event()
        self.closed = False
        self.version = 0
        self.changed_at = time.time()
        # Called with (kind, value, labels) for metric observations: set by the metrics module.
        self.observers: list[Callable[[str, float, dict[str, str]], None]] = []
        for exporter in controller.model.exporters.values():
            self._tracker.last[exporter.key] = (_status(exporter), time.time(), exporter.status_message)
        for lease in controller.model.leases.values():
            if lease.exporter is not None:
                self._tracker.ready_seen.add(lease.key)

    # -- following changes ---------------------------------------------------------------------

    def attach(self) -> None:
        self._controller.watchers.append(self._on_change)

    def detach(self) -> None:
        if self._on_change in self._controller.watchers:
            self._controller.watchers.remove(self._on_change)
        self.closed = True
        self._changed.set()

    async def wait_change(self, after: int) -> int:
        """Wait until the version moves past `after` (or the lab is detached); return the new version."""
        while self.version <= after and not self.closed:
            await self._changed.wait()
        return self.version

    def _on_change(self, changes: Changes) -> None:
        now = time.time()
        for key, exporter in changes.exporters.items():
            self._track_status(key, exporter, now)
        for lease in changes.leases.values():
            if lease.exporter is not None and lease.key not in self._tracker.ready_seen:
                self._tracker.ready_seen.add(lease.key)
                start = lease.effective_begin or now
                self._observe("request_to_ready", start - lease.created, {})
                asked = max(lease.created, lease.begin_time or lease.created)
                self._observe("queue_wait", max(0.0, start - asked), {})
            if lease.ended:
                self._tracker.ready_seen.discard(lease.key)
        self.version += 1
        self._tracker.touched.append((self.version, frozenset(self._touched(changes)), frozenset(changes.leases)))
        self.changed_at = now
        self._changed.set()
        self._changed = anyio.Event()

    def _touched(self, changes: Changes) -> set[tuple[str, str]]:
        """The exporters whose row a change may alter: its own, and for a lease, the exporter it holds or
        names and those it waits for (their waiting counts)."""
        keys = set(changes.exporters) | set(changes.deleted_exporters)
        for lease in changes.leases.values():
            if lease.exporter:
                keys.add((lease.namespace, lease.exporter))
            keys.update(self._candidates(lease))
        return keys

    def touched_since(self, version: int) -> Touched | None:
        """What the changes after `version` touched, or None if that is no longer remembered."""
        touched = Touched(set(), set())
        if version >= self.version:
            return touched
        remembered = self._tracker.touched
        if not remembered or remembered[0][0] > version + 1:
            return None
        for number, exporters, leases in remembered:
            if number > version:
                touched.exporters.update(exporters)
                touched.leases.update(leases)
        return touched

    def _track_status(self, key: tuple[str, str], exporter: Exporter, now: float) -> None:
        status = _status(exporter)
        previous = self._tracker.last.get(key)
        if previous is not None and (previous[0], previous[2]) == (status, exporter.status_message):
            return
        # A new message under the same status (a hook's progress) is a line of the timeline too.
        self._tracker.last[key] = (status, now if previous is None or previous[0] != status else previous[1],
                                   exporter.status_message)  # fmt: skip
        history = self._tracker.history.setdefault(key, deque(maxlen=HISTORY))
        # What an exporter reports on leaving a hook status is that hook's output (its tail).
        hook = HOOK_STATUSES.get(previous[0], "") if previous is not None and previous[0] != status else ""
        history.append(StatusChange(now, STATUS_NAMES.get(status, "unspecified"), exporter.status_message, hook))
        if previous is None or previous[0] == status:
            return
        if previous[0] in HOOK_STATUSES:
            hook = HOOK_STATUSES[previous[0]]
            self._observe("hook_seconds", now - previous[1], {"hook": hook})
        if status in HOOK_FAILED:
            self._observe("hook_failure", 1.0, {"hook": HOOK_FAILED[status]})

    def _observe(self, kind: str, value: float, labels: dict[str, str]) -> None:
        for observer in self.observers:
            observer(kind, value, labels)

    # -- snapshots -----------------------------------------------------------------------------

    def identify(self, token: str) -> Identity:
        """The identity behind a client token or the admin credential (TokenError otherwise)."""
        return self._controller.identify(token)

    def exporters(self, namespace: str | None = None) -> list[ExporterRow]:
        model = self._controller.model
        waiting = self._waiting(namespace)
        return [
            self._row(exporter, waiting)
            for exporter in sorted(model.exporters.values(), key=lambda e: e.key)
            if namespace is None or exporter.namespace == namespace
        ]

    def exporter_rows(
        self, namespace: str | None, keys: set[tuple[str, str]]
    ) -> dict[tuple[str, str], ExporterRow | None]:
        """The rows of these exporters as `namespace` sees them (None: gone); others' are left out."""
        model = self._controller.model
        waiting = self._waiting(namespace)
        rows: dict[tuple[str, str], ExporterRow | None] = {}
        for key in keys:
            if namespace is not None and key[0] != namespace:
                continue
            exporter = model.exporters.get(key)
            rows[key] = None if exporter is None else self._row(exporter, waiting)
        return rows

    def exporter_count(self, namespace: str | None) -> int:
        return sum(1 for e in self._controller.model.exporters.values() if namespace in (None, e.namespace))

    def exporter(self, namespace: str, name: str) -> ExporterRow | None:
        return self.exporter_rows(namespace, {(namespace, name)}).get((namespace, name))

    def _waiting(self, namespace: str | None) -> dict[tuple[str, str], int]:
        waiting: dict[tuple[str, str], int] = {}
        for lease in self._pending(namespace):
            for key in self._candidates(lease):
                waiting[key] = waiting.get(key, 0) + 1
        return waiting

    def _row(self, exporter: Exporter, waiting: dict[tuple[str, str], int]) -> ExporterRow:
        model = self._controller.model
        held = model.leases.get((exporter.namespace, exporter.lease)) if exporter.lease else None
        return ExporterRow(
            exporter.namespace,
            exporter.name,
            dict(exporter.labels),
            status_name(exporter),
            exporter.status_message,
            exporter.online,
            exporter.last_seen,
            exporter.enabled,
            exporter.lease,
            held.client if held else None,
            held.expiry() if held else None,
            waiting.get(exporter.key, 0),
        )

    def leases(self, namespace: str | None = None, selector: str = "") -> list[LeaseRow]:
        """Leases, newest first (`lease_order`); `selector` (the CLI's syntax) matches the lease's selector
        equalities and its exporter's labels. InvalidSelector if it does not parse."""
        shown = self._lease_filter(namespace, selector)
        return [_lease_row(lease) for lease in sorted(filter(shown, self._controller.model.leases.values()),
                                                      key=_lease_order)]  # fmt: skip

    def lease_rows(
        self, namespace: str | None, selector: str, keys: set[tuple[str, str]]
    ) -> dict[tuple[str, str], LeaseRow | None]:
        """The rows of these leases as the leases page of `namespace` filtered by `selector` shows them
        (None: not shown, gone or filtered out); other namespaces' are left out."""
        shown = self._lease_filter(namespace, selector)
        leases = self._controller.model.leases
        rows: dict[tuple[str, str], LeaseRow | None] = {}
        for key in keys:
            if namespace is not None and key[0] != namespace:
                continue
            lease = leases.get(key)
            rows[key] = _lease_row(lease) if lease is not None and shown(lease) else None
        return rows

    def lease_counts(self, namespace: str | None, selector: str) -> dict[str, int]:
        """How many leases the leases page of `namespace` filtered by `selector` counts in each state."""
        shown = self._lease_filter(namespace, selector)
        counts = {"active": 0, "pending": 0, "ended": 0}
        for lease in filter(shown, self._controller.model.leases.values()):
            counts[_state(lease)] += 1
        return counts

    def leases_on(self, exporters: set[tuple[str, str]]) -> set[tuple[str, str]]:
        """The leases that hold or name one of these exporters (their labels count in a filter)."""
        return {lease.key for lease in self._controller.model.leases.values()
                if _exporter_of(lease) in exporters}  # fmt: skip

    def _lease_filter(self, namespace: str | None, selector: str) -> Callable[[Lease], bool]:
        """Whether the leases page of `namespace` filtered by `selector` shows a lease (InvalidSelector if
        `selector` does not parse)."""
        wanted = parse(selector)
        model = self._controller.model

        def shown(lease: Lease) -> bool:
            if namespace is not None and lease.namespace != namespace:
                return False
            if not wanted:
                return True
            labels = dict(parse(lease.selector).equalities())
            exporter = model.exporters.get(_exporter_of(lease))
            if exporter is not None:
                labels.update(exporter.labels)
            return wanted.matches(labels)

        return shown

    def lease_owner(self, namespace: str, name: str) -> str | None:
        lease = self._controller.model.leases.get((namespace, name))
        return None if lease is None else lease.client

    def clients(self) -> list[ClientRow]:
        model = self._controller.model
        counts: dict[tuple[str, str], int] = {}
        for lease in model.active_leases():
            counts[(lease.namespace, lease.client)] = counts.get((lease.namespace, lease.client), 0) + 1
        return [
            ClientRow(c.namespace, c.name, dict(c.labels), counts.get(c.key, 0))
            for c in sorted(model.clients.values(), key=lambda c: c.key)
        ]

    def history(self, namespace: str, name: str) -> list[StatusChange]:
        return list(self._tracker.history.get((namespace, name), ()))

    def exporter_leases(self, namespace: str, name: str) -> list[LeaseRow]:
        return [
            _lease_row(lease)
            for lease in sorted(self._controller.model.leases.values(), key=_lease_order)
            if _exporter_of(lease) == (namespace, name)
        ]

    async def events(self, namespace: str, exporter: str, limit: int = 200) -> list[dict[str, Any]]:
        rows = await self._controller.store.events(limit=5000)
        mine = [row for row in rows if row["namespace"] == namespace and row["exporter"] == exporter]
        return mine[-limit:]

    def counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """Exporters by status and leases by state (for the metrics)."""
        statuses: dict[str, int] = {}
        for exporter in self._controller.model.exporters.values():
            statuses[status_name(exporter)] = statuses.get(status_name(exporter), 0) + 1
        states: dict[str, int] = {"active": 0, "pending": 0, "ended": 0}
        for lease in self._controller.model.leases.values():
            states[_state(lease)] += 1
        return statuses, states

    # -- actions -------------------------------------------------------------------------------

    async def end_lease(self, namespace: str, name: str, who: str) -> None:
        """End a lease (the caller checked that `who` may); LookupError if there is none."""
        async with self._controller.change() as changes:
            lease = self._controller.model.leases.get((namespace, name))
            if lease is None:
                raise LookupError(f"there is no lease {namespace}/{name}")
            if lease.ended:
                return
            lease.released = True
            end_lease(self._controller.model, changes, lease, "Released", f"ended from the dashboard by {who}",
                      time.time(), who)  # fmt: skip

    async def set_enabled(self, namespace: str, name: str, enabled: bool, who: str) -> None:
        """Enable an exporter, or drain it (`Controller.set_enabled`, as `jmp admin enable|disable`)."""
        await self._controller.set_enabled(namespace, name, enabled, who, "from the dashboard")

    # -- helpers -------------------------------------------------------------------------------

    def _pending(self, namespace: str | None) -> list[Lease]:
        return [
            lease for lease in self._controller.model.active_leases()
            if lease.exporter is None and (namespace is None or lease.namespace == namespace)
        ]  # fmt: skip

    def _candidates(self, lease: Lease) -> list[tuple[str, str]]:
        model = self._controller.model
        if lease.exporter_name:
            return [(lease.namespace, lease.exporter_name)]
        selector = lease.parsed_selector
        return [e.key for e in model.exporters.values() if e.namespace == lease.namespace
                and selector.matches(e.labels)]  # fmt: skip


def _status(exporter: Exporter) -> int:
    return 1 if exporter.streams == 0 else exporter.status


def _state(lease: Lease) -> str:
    if lease.ended:
        return "ended"
    return "active" if lease.exporter is not None else "pending"


def _exporter_of(lease: Lease) -> tuple[str, str]:
    """The exporter a lease holds, or the one it asked for by name (its key)."""
    return (lease.namespace, lease.exporter or lease.exporter_name)


def _lease_order(lease: Lease) -> str:
    return lease_order(lease.created, lease.namespace, lease.name)


def _lease_row(lease: Lease) -> LeaseRow:
    state = _state(lease)
    pending = lease.condition("Pending")
    ready = lease.condition("Ready")
    reason = ""
    if state == "ended":
        last = lease.conditions[-1] if lease.conditions else None
        reason = f"{last.reason}: {last.message}" if last else ""
    position = pending.message if state == "pending" and pending else ""
    begin = lease.effective_begin if ready is not None else None
    until = lease.expiry() if state != "ended" else lease.effective_end
    return LeaseRow(lease.namespace, lease.name, lease.client, lease.selector, lease.exporter, state, position,
                    lease.created, begin, until, reason)  # fmt: skip
