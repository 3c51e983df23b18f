"""The one global scheduler: ends leases that are due, hands free exporters to waiting leases.

`schedule` runs inside every change of the controller's state (a lease created or
released, an exporter that became available or came online) and on its timers (an end
time, a scheduled begin time), so a free exporter is assigned within the call that freed it
or asked for it. Waiting leases are served by policy priority, then age (FIFO within a
priority); among the exporters that match, are enabled, online and acknowledged the end of
their last lease, the least recently used is taken. The Pending condition tells each
waiting lease its place ("2nd in line for board=rpi4").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from jumpstarter_controller.model import Exporter, Lease, Model, ordinal

__all__ = ["Changes", "Event", "end_lease", "next_deadline", "schedule", "unsatisfiable"]


@dataclass
class Event:
    """One line of the audit trail: who did what, to which lease/exporter/client, and why."""

    who: str
    what: str
    namespace: str = ""
    lease: str = ""
    exporter: str = ""
    client: str = ""
    why: str = ""


@dataclass
class Changes:
    """What a change of the state touched: written in one transaction, then announced."""

    leases: dict[tuple[str, str], Lease] = field(default_factory=dict)
    exporters: dict[tuple[str, str], Exporter] = field(default_factory=dict)
    deleted_exporters: set[tuple[str, str]] = field(default_factory=set)
    clients: set[tuple[str, str]] = field(default_factory=set)
    deleted_clients: set[tuple[str, str]] = field(default_factory=set)
    events: list[Event] = field(default_factory=list)

    def lease(self, lease: Lease) -> None:
        self.leases[lease.key] = lease

    def exporter(self, exporter: Exporter) -> None:
        self.exporters[exporter.key] = exporter

    def event(self, event: Event) -> None:
        self.events.append(event)

    def merge(self, later: Changes) -> None:
        """Add what a later change touched (a record deleted after it changed is only deleted)."""
        self.leases.update(later.leases)
        for key in later.deleted_exporters:
            self.exporters.pop(key, None)
        for key in later.deleted_clients:
            self.clients.discard(key)
        self.exporters.update(later.exporters)
        self.clients |= later.clients
        self.deleted_exporters |= later.deleted_exporters
        self.deleted_clients |= later.deleted_clients
        self.events.extend(later.events)

    def dirty(self) -> bool:
        """Whether there is anything to write."""
        return bool(self.leases or self.exporters or self.deleted_exporters or self.clients
                    or self.deleted_clients or self.events)  # fmt: skip


def end_lease(model: Model, changes: Changes, lease: Lease, reason: str, message: str, now: float, who: str) -> None:
    """End `lease` (Ready=False with `reason`); its exporter must see leased=false and report AVAILABLE."""
    if lease.ended:
        return
    lease.ended = True
    lease.effective_end = now
    # A lease that leaves the queue says so, or the original's clients poll it forever.
    if lease.condition("Pending") is not None:
        lease.set_condition("Pending", "False", reason, message, now)
    if lease.exporter is not None or lease.condition("Ready") is not None:
        lease.set_condition("Ready", "False", reason, message, now)
    exporter = model.exporters.get((lease.namespace, lease.exporter)) if lease.exporter else None
    if exporter is not None and exporter.lease == lease.name:
        exporter.lease = None
        exporter.ack_pending = True
        exporter.notice_sent = False
        exporter.last_used = now
        changes.exporter(exporter)
    changes.lease(lease)
    changes.event(Event(who, f"lease {reason.lower()}", lease.namespace, lease.name, lease.exporter or "",
                        lease.client, message))  # fmt: skip


def candidates(model: Model, lease: Lease) -> list[Exporter]:
    """Every exporter this lease could ever get (busy or offline ones included)."""
    if lease.exporter_name:
        exporter = model.exporters.get((lease.namespace, lease.exporter_name))
        if exporter is None or not lease.parsed_selector.matches(exporter.labels):
            return []
        return [exporter] if exporter.enabled or lease.allow_disabled else []
    selector = lease.parsed_selector
    return [
        exporter
        for exporter in model.exporters.values()
        if exporter.namespace == lease.namespace and exporter.enabled and selector.matches(exporter.labels)
    ]


def unsatisfiable(model: Model, lease: Lease) -> tuple[str, str] | None:
    """(reason, message) when no exporter of the namespace could ever serve `lease`, else None."""
    if lease.exporter_name:
        exporter = model.exporters.get((lease.namespace, lease.exporter_name))
        if exporter is None:
            return "ExporterNotFound", f"exporter {lease.exporter_name} does not exist in namespace {lease.namespace}"
        if not lease.parsed_selector.matches(exporter.labels):
            return "SelectorMismatch", f"exporter {lease.exporter_name} does not match the selector {lease.selector}"
        if not exporter.enabled and not lease.allow_disabled:
            return "ExporterDisabled", f"exporter {lease.exporter_name} is disabled"
        return None
    selector = lease.parsed_selector
    matching = [e for e in model.exporters.values() if e.namespace == lease.namespace and selector.matches(e.labels)]
    if not matching:
        return "NoAccess", f"no exporter in namespace {lease.namespace} matches {lease.selector}"
    if not any(e.enabled for e in matching):
        return "AllDisabled", f"every exporter matching {lease.selector} is disabled"
    return None


def schedule(model: Model, changes: Changes, now: float) -> None:
    """End the leases that are due, then serve the waiting ones in order."""
    for lease in model.active_leases():
        expiry = lease.due()
        if lease.released:
            end_lease(model, changes, lease, "Released", "The lease was released", now, f"client:{lease.client}")
        elif expiry is not None and now >= expiry:
            end_lease(model, changes, lease, "Expired", "The lease expired", now, "scheduler")
    waiting = sorted(
        (
            lease
            for lease in model.active_leases()
            if lease.exporter is None and (lease.begin_time is None or lease.begin_time <= now)
        ),
        key=lambda lease: (-lease.priority, lease.seq),
    )
    if not waiting:
        return
    taken: set[tuple[str, str]] = set()
    still_waiting: list[tuple[Lease, list[Exporter]]] = []
    for lease in waiting:
        possible = candidates(model, lease)
        ready = [e for e in possible if e.key not in taken and e.ready_for_lease()]
        if not ready:
            still_waiting.append((lease, possible))
            continue
        exporter = min(ready, key=lambda e: (e.last_used, e.name))
        taken.add(exporter.key)
        _assign(changes, lease, exporter, now)
    _publish_positions(changes, still_waiting, now)


def _assign(changes: Changes, lease: Lease, exporter: Exporter, now: float) -> None:
    lease.exporter = exporter.name
    lease.effective_begin = now
    exporter.lease = lease.name
    exporter.last_used = now
    exporter.notice_sent = False
    exporter.done_with_lease = False
    lease.set_condition("Pending", "False", "Ready", "An exporter has been acquired", now)
    lease.set_condition("Ready", "True", "Ready", "An exporter has been acquired for the client", now)
    changes.lease(lease)
    changes.exporter(exporter)
    changes.event(Event("scheduler", "lease acquired", lease.namespace, lease.name, exporter.name, lease.client,
                        f"least recently used of the exporters matching {lease.selector}"))  # fmt: skip


def _publish_positions(changes: Changes, waiting: Iterable[tuple[Lease, list[Exporter]]], now: float) -> None:
    """Each waiting lease's place: 1 + the earlier waiting leases that want one of its exporters."""
    # Waiting leases with the same candidates (the same selector, mostly) are counted together:
    # the cost grows with leases times distinct selectors, not with leases squared.
    earlier: dict[frozenset[tuple[str, str]], int] = {}
    overlaps: dict[tuple[frozenset[tuple[str, str]], frozenset[tuple[str, str]]], bool] = {}
    for lease, possible in waiting:
        mine = frozenset(e.key for e in possible)
        position = 1
        for other, count in earlier.items():
            overlap = overlaps.get((other, mine))
            if overlap is None:
                overlap = overlaps[(other, mine)] = not other.isdisjoint(mine)
            if overlap:
                position += count
        earlier[mine] = earlier.get(mine, 0) + 1
        target = lease.exporter_name or lease.selector
        if not possible:
            reason, why = "Disabled", "every matching exporter is disabled"
        elif not any(e.online for e in possible):
            reason, why = "Offline", "every matching exporter is offline"
        elif not any(e.lease is None for e in possible):
            reason, why = "NotAvailable", "every matching exporter is leased"
        else:
            reason, why = "NotReady", "a matching exporter is still cleaning up after its last lease"
        message = f"{ordinal(position)} in line for {target} ({why})"
        before = lease.condition("Pending")
        if before is None or (before.status, before.reason, before.message) != ("True", reason, message):
            lease.set_condition("Pending", "True", reason, message, now)
            changes.lease(lease)


def next_deadline(model: Model) -> float | None:
    """The next instant at which `schedule` has something to do without any event: an end, a begin."""
    deadlines = []
    for lease in model.active_leases():
        expiry = lease.due()
        if expiry is not None:
            deadlines.append(expiry)
        if lease.exporter is None and lease.begin_time is not None:
            deadlines.append(lease.begin_time)
    return min(deadlines, default=None)
