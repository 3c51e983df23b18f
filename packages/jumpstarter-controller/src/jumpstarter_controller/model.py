"""The controller's state in memory: clients, exporters, leases and their conditions.

The controller is one active process (`jumpstarter_controller.controller`): it holds this
model, changes it only inside `Controller.change()`, which writes every changed record to
the database in one transaction before the call that changed it answers, and rebuilds it
from the database when it starts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from jumpstarter_controller.selectors import Selector, parse

__all__ = ["Client", "Condition", "Exporter", "Lease", "Model", "ordinal"]

ONLINE = 1
STATUS_OFFLINE = 1
STATUS_AVAILABLE = 2
# BEFORE_LEASE_HOOK_FAILED and AFTER_LEASE_HOOK_FAILED (jumpstarter.v1.ExporterStatus).
HOOK_FAILED_STATUSES = (6, 7)
# The lease condition that says an exporter released a lease because a hook failed (type, and reason by status).
HOOK_FAILED_CONDITION = "HookFailed"
HOOK_FAILED_REASONS = {6: "BeforeLeaseHook", 7: "AfterLeaseHook"}


@dataclass
class Client:
    namespace: str
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    token_version: int = 1
    created: float = field(default_factory=time.time)

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)


@dataclass
class Exporter:
    namespace: str
    name: str
    uuid: str
    labels: dict[str, str] = field(default_factory=dict)
    enabled: bool = True
    devices: list[dict[str, Any]] | None = None
    """The driver reports of its last Register (None: never registered, or unregistered)."""
    status: int = 0
    status_message: str = ""
    last_seen: float = 0.0
    lease: str | None = None
    """The name of the lease it holds."""
    ack_pending: bool = False
    """Its last lease ended and it has not yet both seen leased=false and reported AVAILABLE since the lease."""
    notice_sent: bool = False
    """leased=false has reached it since its last lease ended."""
    last_used: float = 0.0
    token_version: int = 1
    created: float = field(default_factory=time.time)
    # In memory only: open Status streams (an exporter is online while it has one).
    streams: int = 0
    # In memory only: it reported AVAILABLE after a busy status while holding its lease (the original's
    # exporter does so after EndSession, and not again after leased=false). A stale AVAILABLE from before
    # the lease does not count: such an exporter may still be taking the lease up.
    done_with_lease: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def online(self) -> bool:
        return self.streams > 0 and self.status != STATUS_OFFLINE

    def ready_for_lease(self) -> bool:
        """Online, idle and acknowledged the end of its last lease (research §5 point 2)."""
        return self.online and self.lease is None and not self.ack_pending and self.status in (0, STATUS_AVAILABLE)


@dataclass
class Condition:
    type: str
    status: str
    reason: str
    message: str
    time: float

    def as_dict(self) -> dict[str, Any]:
        return {"type": self.type, "status": self.status, "reason": self.reason, "message": self.message,
                "time": self.time}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Condition:
        return cls(data["type"], data["status"], data["reason"], data["message"], float(data["time"]))


@dataclass
class Lease:
    namespace: str
    name: str
    client: str
    selector: str
    """Formatted (metav1.FormatLabelSelector), `<none>` when empty."""
    exporter_name: str = ""
    """A requested exporter (bare name), or empty."""
    allow_disabled: bool = False
    duration: float | None = None
    begin_time: float | None = None
    end_time: float | None = None
    tags: dict[str, str] = field(default_factory=dict)
    context: dict[str, str] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    seq: int = 0
    priority: int = 0
    exporter: str | None = None
    effective_begin: float | None = None
    effective_end: float | None = None
    released: bool = False
    ended: bool = False
    conditions: list[Condition] = field(default_factory=list)
    # In memory only: not ended before this instant (the controller's restart grace, `hold_after_restart`).
    held_until: float = 0.0

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @property
    def parsed_selector(self) -> Selector:
        return parse(self.selector)

    def expiry(self) -> float | None:
        """When the lease ends (research §2.1): its end time, its scheduled window, or from its start."""
        if self.end_time is not None:
            return self.end_time
        if self.duration is None:
            return None
        if self.begin_time is not None:
            return self.begin_time + self.duration
        if self.effective_begin is not None:
            return self.effective_begin + self.duration
        return None

    def due(self) -> float | None:
        """When the scheduler ends it: its expiry, or the end of the restart grace if that is later."""
        expiry = self.expiry()
        return None if expiry is None else max(expiry, self.held_until)

    def set_condition(self, type_: str, status: str, reason: str, message: str, now: float) -> None:
        """Kubernetes' SetStatusCondition: update in place (keeping the order), or append."""
        for condition in self.conditions:
            if condition.type == type_:
                if condition.status != status:
                    condition.time = now
                condition.status, condition.reason, condition.message = status, reason, message
                return
        self.conditions.append(Condition(type_, status, reason, message, now))

    def add_note(self, type_: str, reason: str, message: str, now: float) -> None:
        """A condition that tells more about the lease (status True), not its state: placed before the
        state's condition, which stays the last one, as the original's clients and `jmp get leases` read it."""
        self.conditions.insert(max(0, len(self.conditions) - 1), Condition(type_, "True", reason, message, now))

    def condition(self, type_: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == type_), None)


@dataclass
class Model:
    clients: dict[tuple[str, str], Client] = field(default_factory=dict)
    exporters: dict[tuple[str, str], Exporter] = field(default_factory=dict)
    leases: dict[tuple[str, str], Lease] = field(default_factory=dict)
    next_seq: int = 1

    def active_leases(self) -> list[Lease]:
        return [lease for lease in self.leases.values() if not lease.ended]

    def hold_after_restart(self, now: float, grace: float) -> list[Lease]:
        """Give every started lease that would end within `grace` until `now + grace`; those leases.

        While the controller was away, the holders of its leases could not extend them (our
        clients hold leases in short steps): the controller's own downtime must not end them."""
        held = []
        for lease in self.active_leases():
            expiry = lease.expiry()
            if lease.exporter is not None and expiry is not None and expiry < now + grace:
                lease.held_until = now + grace
                held.append(lease)
        return held


def ordinal(number: int) -> str:
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"
