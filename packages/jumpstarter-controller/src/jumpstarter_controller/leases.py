"""Lease requests: validation, time fields, policies and limits, then the change itself.

Each function checks everything before it changes anything, so a bad request (a malformed
selector, a duration over the policy's cap, one lease too many) changes nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from jumpstarter.config.durations import format_duration
from jumpstarter_controller.controller import Controller
from jumpstarter_controller.credentials import Identity
from jumpstarter_controller.model import HOOK_FAILED_CONDITION, HOOK_FAILED_REASONS, HOOK_FAILED_STATUSES, Lease
from jumpstarter_controller.names import check_name, uuid7
from jumpstarter_controller.scheduler import Event, end_lease, unsatisfiable
from jumpstarter_controller.selectors import InvalidSelector, check_key, check_value, parse

__all__ = ["LeaseRequest", "LeaseUpdate", "RequestError", "create_lease", "release_lease", "update_lease"]

TAG_PREFIX = "metadata.jumpstarter.dev/"


class RequestError(ValueError):
    """A refused request: `code` is the gRPC status code's name (UNKNOWN, INVALID_ARGUMENT...).

    Raised before anything is changed (see `Controller.change`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class LeaseRequest:
    selector: str = ""
    exporter_name: str = ""
    duration: float | None = None
    begin_time: float | None = None
    end_time: float | None = None
    tags: dict[str, str] = field(default_factory=dict)
    context: dict[str, str] = field(default_factory=dict)
    allow_disabled: bool = False
    lease_id: str = ""


@dataclass
class LeaseUpdate:
    duration: float | None = None
    begin_time: float | None = None
    end_time: float | None = None
    client: str | None = None


def reconcile_times(
    duration: float | None, begin: float | None, end: float | None
) -> tuple[float, float | None, float | None]:
    """The original's time rules (research §2.1): any two of duration/begin/end, or the duration alone."""
    if begin is not None and end is not None:
        if end <= begin:
            raise RequestError("UNKNOWN", "the end time must be after the begin time")
        if duration is not None and abs((end - begin) - duration) > 1e-3:
            raise RequestError("UNKNOWN", "duration, begin time and end time disagree: give two of them")
        duration = end - begin
    elif end is not None:
        if duration is None:
            raise RequestError("UNKNOWN", "an end time needs a duration or a begin time")
        begin = end - duration
    if duration is None:
        raise RequestError("UNKNOWN", "a lease needs a duration (e.g. --duration 30m)")
    if duration <= 0:
        raise RequestError("UNKNOWN", "the lease duration must be positive")
    return duration, begin, end


def _check_tags(tags: dict[str, str], limit: int) -> None:
    if len(tags) > limit:
        raise RequestError("INVALID_ARGUMENT", f"a lease takes at most {limit} tags, {len(tags)} were given")
    for key, value in tags.items():
        if "/" in key:
            raise RequestError("INVALID_ARGUMENT", f"tag key {key!r} must not contain '/'")
        try:
            check_key(key)
            check_value(key, value)
        except InvalidSelector as error:
            raise RequestError("INVALID_ARGUMENT", str(error).replace("label", "tag")) from None


def lease_labels(lease: Lease) -> dict[str, str]:
    """What ListLeases' filter sees: the selector's equalities and the tags (prefixed)."""
    labels = parse(lease.selector).equalities()
    labels.update({TAG_PREFIX + key: value for key, value in lease.tags.items()})
    return labels


async def create_lease(controller: Controller, owner: Identity, request: LeaseRequest) -> Lease:
    config = controller.config
    if not request.selector.strip() and not request.exporter_name:
        raise RequestError("INVALID_ARGUMENT", "a lease needs a selector (-l key=value) or an exporter name")
    try:
        selector = str(parse(request.selector))
    except InvalidSelector as error:
        raise RequestError("UNKNOWN", f"InvalidSelector: {error}") from None
    if request.exporter_name:
        _checked(request.exporter_name, "exporter")
    name = _checked(request.lease_id, "lease") if request.lease_id else uuid7()
    _check_tags(request.tags, config.limits.max_tags)
    duration, begin, end = reconcile_times(request.duration, request.begin_time, request.end_time)
    _check_cap(controller, owner, duration)
    client = controller.model.clients[(owner.namespace, owner.name)]
    policy = config.policy_for(owner.namespace, owner.name, client.labels)
    now = time.time()
    if end is not None and end <= now:
        raise RequestError("UNKNOWN", "the lease's end time has passed already")
    async with controller.change() as changes:
        if (owner.namespace, name) in controller.model.leases:
            raise RequestError("ALREADY_EXISTS", f"lease {name} exists already in namespace {owner.namespace}")
        mine = sum(
            1 for lease in controller.model.active_leases()
            if lease.namespace == owner.namespace and lease.client == owner.name
        )  # fmt: skip
        if mine >= config.limits.leases_per_client:
            raise RequestError(
                "RESOURCE_EXHAUSTED",
                f"client {owner.name} holds {mine} active leases, the most one client may hold: delete some first",
            )
        lease = Lease(
            owner.namespace, name, owner.name, selector, exporter_name=request.exporter_name,
            allow_disabled=request.allow_disabled, duration=duration, begin_time=begin, end_time=end,
            tags=dict(request.tags), context=dict(request.context), created=now, seq=controller.model.next_seq,
            priority=policy.priority if policy else 0,
        )  # fmt: skip
        controller.model.next_seq += 1
        # Pending first, so that Ready, set later, is the last condition (the original's clients read the last).
        lease.set_condition("Pending", "True", "Pending", "waiting for an exporter", now)
        controller.model.leases[lease.key] = lease
        changes.lease(lease)
        why = f"selector {selector}, duration {format_duration(duration)}"
        changes.event(Event(f"client:{owner.name}", "lease created", owner.namespace, name,
                            request.exporter_name, owner.name, why))  # fmt: skip
        verdict = unsatisfiable(controller.model, lease)
        if verdict is not None:
            reason, message = verdict
            lease.ended, lease.effective_end = True, now
            lease.set_condition("Pending", "False", reason, message, now)
            lease.set_condition("Unsatisfiable", "True", reason, message, now)
            changes.event(Event("scheduler", "lease unsatisfiable", owner.namespace, name, "", owner.name, message))
    return lease


def _check_cap(controller: Controller, owner: Identity, duration: float) -> None:
    """Refuse a duration over the owner's policy's max_duration (else the controller's limits.max_duration)."""
    config = controller.config
    client = controller.model.clients[(owner.namespace, owner.name)]
    policy = config.policy_for(owner.namespace, owner.name, client.labels)
    if policy and policy.max_duration:
        cap, whose = policy.max_duration, f"policy {policy.name}"
    else:
        cap, whose = config.limits.max_duration, "this controller"
    if duration > cap:
        asked, allowed = format_duration(duration), format_duration(cap)
        raise RequestError("UNKNOWN", f"the duration {asked} exceeds the {allowed} that {whose} allows")


def _owned(controller: Controller, owner: Identity, name: str, action: str) -> Lease:
    lease = controller.model.leases.get((owner.namespace, name))
    if lease is None:
        raise RequestError("NOT_FOUND", f"there is no lease {name} in namespace {owner.namespace}")
    if lease.client != owner.name:
        raise RequestError("UNKNOWN", f"{action} permission denied: lease {name} belongs to another client")
    return lease


async def update_lease(controller: Controller, owner: Identity, name: str, update: LeaseUpdate) -> Lease:
    async with controller.change() as changes:
        lease = _owned(controller, owner, name, "UpdateLease")
        if lease.ended:
            raise RequestError("FAILED_PRECONDITION", f"lease {name} has ended: create a new one")
        now = time.time()
        target = None
        if update.client is not None:
            namespace, _, target = update.client.removeprefix("namespaces/").partition("/clients/")
            if namespace != owner.namespace or not target:
                raise RequestError("INVALID_ARGUMENT", "a lease moves only to a client of its own namespace "
                                   f"(namespaces/{owner.namespace}/clients/NAME)")  # fmt: skip
            if (owner.namespace, target) not in controller.model.clients:
                raise RequestError("NOT_FOUND", f"there is no client {target} in namespace {owner.namespace}")
        if update.begin_time is not None and lease.exporter is not None:
            raise RequestError("FAILED_PRECONDITION", "the begin time cannot change once the lease has started")
        if any(v is not None for v in (update.duration, update.begin_time, update.end_time)):
            begin = update.begin_time if update.begin_time is not None else lease.begin_time
            end = update.end_time
            duration = update.duration if update.duration is not None else (None if end is not None else lease.duration)
            duration, begin, end = reconcile_times(duration, begin, end)
            before = lease.expiry()
            trial = Lease(lease.namespace, lease.name, lease.client, lease.selector, duration=duration,
                          begin_time=begin, end_time=end, effective_begin=lease.effective_begin)  # fmt: skip
            after = trial.expiry()
            if before is not None and after is not None and after < before - 1e-3:
                raise RequestError(
                    "UNKNOWN",
                    f"this would shorten lease {name} (ending {format_duration(before - after)} earlier): "
                    "a lease is only extended; release it (jmp delete lease) to end it early",
                )
            _check_cap(controller, owner, duration)
            lease.duration, lease.begin_time, lease.end_time = duration, begin, end
            changes.event(Event(f"client:{owner.name}", "lease extended", owner.namespace, name,
                                lease.exporter or "", owner.name, f"duration {format_duration(duration)}"))  # fmt: skip
        if target is not None and target != lease.client:
            changes.event(Event(f"client:{owner.name}", "lease transferred", owner.namespace, name,
                                lease.exporter or "", target, f"from {lease.client}"))  # fmt: skip
            lease.client = target
        del now
        changes.lease(lease)
    return lease


async def release_lease(controller: Controller, owner: Identity, name: str) -> None:
    """The owning client releases its lease (DeleteLease)."""
    async with controller.change() as changes:
        lease = _owned(controller, owner, name, "DeleteLease")
        if lease.released or lease.ended:
            raise RequestError("FAILED_PRECONDITION", f"lease {name} has already been released")
        lease.released = True
        changes.lease(lease)


async def release_by_exporter(controller: Controller, exporter: Identity, name: str) -> None:
    """The exporter holding `name` ends it (ReleaseLease of kind Exporter, or release_lease=true). Idempotent."""
    async with controller.change() as changes:
        lease = controller.model.leases.get((exporter.namespace, name))
        if lease is None:
            raise RequestError("NOT_FOUND", f"there is no lease {name} in namespace {exporter.namespace}")
        if lease.exporter != exporter.name:
            raise RequestError("FAILED_PRECONDITION", f"lease {name} is not held by exporter {exporter.name}")
        if not lease.ended:
            # After a failed hook, the lease's client learns why from the lease (its tunnel may be gone).
            record = controller.model.exporters.get((exporter.namespace, exporter.name))
            why = "The exporter released the lease"
            hook = None  # (the condition's reason, what failed) after a failed hook
            if record is not None and record.status in HOOK_FAILED_STATUSES and record.status_message:
                hook = (HOOK_FAILED_REASONS[record.status], record.status_message.splitlines()[0])
                why = f"{why}: {hook[1]}"
            now = time.time()
            end_lease(controller.model, changes, lease, "Released", why, now, f"exporter:{exporter.name}")
            if hook is not None:
                # Ready=False keeps the original's reason (Released, which its clients act on); a condition of
                # its own says which hook failed, for clients to tell without reading the message.
                lease.add_note(HOOK_FAILED_CONDITION, *hook, now)


def _checked(name: str, what: str) -> str:
    try:
        return check_name(name, what)
    except ValueError as error:
        raise RequestError("INVALID_ARGUMENT", str(error)) from None
