"""The scheduler on its own: order, choice of exporter, positions, ends, idle acknowledgement."""

from __future__ import annotations

from jumpstarter_controller.model import Exporter, Lease, Model
from jumpstarter_controller.scheduler import Changes, end_lease, next_deadline, schedule, unsatisfiable


def board(model: Model, name: str, **labels: str) -> Exporter:
    exporter = Exporter("lab", name, name, labels or {"board": "rpi4"}, streams=1, status=2)
    model.exporters[exporter.key] = exporter
    return exporter


def ask(model: Model, name: str, selector: str = "board=rpi4", priority: int = 0, **fields: object) -> Lease:
    lease = Lease("lab", name, "alice", selector, seq=model.next_seq, priority=priority, duration=60, **fields)  # type: ignore[arg-type]
    model.next_seq += 1
    lease.set_condition("Pending", "True", "Pending", "", 0)
    model.leases[lease.key] = lease
    return lease


def test_fifo_with_positions_then_the_next_after_release_and_acknowledgement() -> None:
    model = Model()
    exporter = board(model, "b1")
    first, second, third = ask(model, "l1"), ask(model, "l2"), ask(model, "l3")
    schedule(model, Changes(), 0)
    assert first.exporter == "b1" and [c.type for c in first.conditions] == ["Pending", "Ready"]
    assert first.condition("Pending").status == "False"  # type: ignore[union-attr]
    assert second.condition("Pending").message.startswith("1st in line for board=rpi4")  # type: ignore[union-attr]
    assert third.condition("Pending").message.startswith("2nd in line for board=rpi4")  # type: ignore[union-attr]

    first.released = True
    schedule(model, Changes(), 1)
    assert first.ended and first.condition("Ready").reason == "Released"  # type: ignore[union-attr]
    assert first.condition("Pending").status == "False"  # type: ignore[union-attr]
    # Not before the exporter saw leased=false and reported AVAILABLE after it.
    assert second.exporter is None and exporter.ack_pending
    assert "cleaning up" in second.condition("Pending").message  # type: ignore[union-attr]
    exporter.notice_sent = True
    exporter.ack_pending = False
    schedule(model, Changes(), 2)
    assert second.exporter == "b1" and third.exporter is None


def test_priority_before_age_and_least_recently_used_exporter() -> None:
    model = Model()
    old, new = board(model, "a-old"), board(model, "z-new")
    old.last_used, new.last_used = 5.0, 1.0
    low = ask(model, "low")
    high = ask(model, "high", priority=10)
    schedule(model, Changes(), 10)
    assert high.exporter == "z-new"  # least recently used, not the alphabetically first
    assert low.exporter == "a-old"


def test_expiry_and_scheduled_begin() -> None:
    model = Model()
    board(model, "b1")
    later = ask(model, "later", begin_time=100.0)
    assert next_deadline(model) == 100.0
    schedule(model, Changes(), 50)
    assert later.exporter is None
    schedule(model, Changes(), 100)
    assert later.exporter == "b1" and later.expiry() == 160.0
    schedule(model, Changes(), 160)
    assert later.ended and later.condition("Ready").reason == "Expired"  # type: ignore[union-attr]


def test_unsatisfiable_reasons() -> None:
    model = Model()
    disabled = board(model, "b1")
    disabled.enabled = False
    assert unsatisfiable(model, ask(model, "a", "board=nope")) == (
        "NoAccess",
        "no exporter in namespace lab matches board=nope",
    )
    assert unsatisfiable(model, ask(model, "b"))[0] == "AllDisabled"  # type: ignore[index]
    assert unsatisfiable(model, ask(model, "c", "<none>", exporter_name="zz"))[0] == "ExporterNotFound"  # type: ignore[index]
    assert unsatisfiable(model, ask(model, "d", "board=x", exporter_name="b1"))[0] == "SelectorMismatch"  # type: ignore[index]


def test_offline_exporter_keeps_its_lease() -> None:
    model = Model()
    exporter = board(model, "b1")
    lease = ask(model, "l1")
    schedule(model, Changes(), 0)
    exporter.streams = 0
    schedule(model, Changes(), 1)
    assert not lease.ended and lease.exporter == "b1"
    waiting = ask(model, "l2")
    schedule(model, Changes(), 2)
    assert waiting.condition("Pending").reason == "Offline"  # type: ignore[union-attr]
    end_lease(model, Changes(), lease, "Released", "done", 3, "test")
    assert exporter.lease is None and exporter.ack_pending


def test_unsatisfiable_edge_cases() -> None:
    """Selectors that no exporter of the lease's namespace could ever match, however they are written."""
    model = Model()
    board(model, "b1")  # board=rpi4, namespace lab
    elsewhere = Exporter("other", "b9", "b9", {"board": "x86"}, streams=1, status=2)
    model.exporters[elsewhere.key] = elsewhere
    for selector in ("!board", "board notin (rpi4)", "board!=rpi4", "board=x86", "board=rpi4,!board", "serial"):
        assert unsatisfiable(model, ask(model, f"l-{len(model.leases)}", selector)) == (
            "NoAccess",
            f"no exporter in namespace lab matches {selector}",
        ), selector
    # One that matches waits instead, even when every match is busy or offline.
    for selector in ("board", "board in (rpi4,x86)", "board!=x86", "<none>"):
        assert unsatisfiable(model, ask(model, f"l-{len(model.leases)}", selector)) is None, selector
    # An exporter of another namespace is not found by name either.
    assert unsatisfiable(model, ask(model, "by-name", "<none>", exporter_name="b9"))[0] == "ExporterNotFound"  # type: ignore[index]
    # A disabled exporter asked for by name: refused unless the request allows disabled ones.
    model.exporters[("lab", "b1")].enabled = False
    assert unsatisfiable(model, ask(model, "d1", "<none>", exporter_name="b1"))[0] == "ExporterDisabled"  # type: ignore[index]
    assert unsatisfiable(model, ask(model, "d2", "<none>", exporter_name="b1", allow_disabled=True)) is None


def test_a_restart_does_not_end_started_leases_before_their_holders_could_extend_them() -> None:
    model = Model()
    board(model, "b1"), board(model, "b2")
    ran_out, long = ask(model, "ran-out"), ask(model, "long")
    long.duration = 3600
    waiting = ask(model, "waiting", "board=none", end_time=150.0)
    schedule(model, Changes(), 0)
    assert ran_out.expiry() == 60.0 and long.exporter is not None
    # The controller was away from 30 to 100 (its holder could not extend "ran-out"), and starts again.
    held = model.hold_after_restart(now=100.0, grace=60.0)
    assert held == [ran_out]  # "long" has time left; "waiting" never started
    assert next_deadline(model) == 150.0  # the waiting lease's own end time comes first
    schedule(model, Changes(), 150)
    assert not ran_out.ended and waiting.ended
    schedule(model, Changes(), 159)
    assert not ran_out.ended
    schedule(model, Changes(), 160)
    assert ran_out.ended and ran_out.condition("Ready").reason == "Expired"  # type: ignore[union-attr]
    assert not long.ended
