"""`LeaseSessions`: a fresh driver session per lease, its status, and its hooks on a real pty.

The provider is served on a real Unix socket (`listen`), in an event loop of its own thread;
the test drives leases as the controller link will (`begin_lease`, `end_lease`) and uses the
drivers with real gRPC clients. Hooks are real scripts that run `j` against the lease's drivers.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from google.protobuf import empty_pb2

from jumpstarter.client import ExporterNotReady, connect
from jumpstarter.common.protocol import STATUS_AFTER_METADATA_KEY
from jumpstarter.config.exporter import parse_exporter_config
from jumpstarter.exporter import Lease, LeaseSessions, listen
from jumpstarter.v1 import common_pb2, jumpstarter_pb2, jumpstarter_pb2_grpc

DRIVERS_DIR = Path(__file__).resolve().parent / "drivers"
S = common_pb2


def config_text(journal: Path, hooks: str = "") -> str:
    return f"""\
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata: {{name: bench-7}}
export:
  power:
    type: jmpcli_drivers.Power
    config: {{journal: {str(journal)!r}}}
{hooks}"""


@dataclass
class Lab:
    """What the controller link would see and do."""

    portal: BlockingPortal
    leases: LeaseSessions
    path: str
    statuses: list[tuple[int, str]] = field(default_factory=list)
    released: list[tuple[str, str]] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def begin(self, name: str = "lease-1", client: str = "alice") -> int:
        return int(self.portal.call(self.leases.begin_lease, name, client))

    def end(self) -> None:
        self.portal.call(self.leases.end_lease)

    def names(self) -> list[str]:
        return [S.ExporterStatus.Name(status).removeprefix("EXPORTER_STATUS_") for status, _ in self.statuses]

    def wait_for(self, status: int, timeout: float = 10.0) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: any(s == status for s, _ in self.statuses), timeout), self.names()

    def stub(self) -> Iterator[jumpstarter_pb2_grpc.ExporterServiceStub]:
        with grpc.insecure_channel(f"unix://{self.path}") as channel:
            yield jumpstarter_pb2_grpc.ExporterServiceStub(channel)


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    # The hooks' `j` imports the test drivers' client classes, as an installed package's.
    monkeypatch.setenv("PYTHONPATH", str(DRIVERS_DIR))

    @contextmanager
    def make(hooks: str = "") -> Iterator[Lab]:
        config = parse_exporter_config(config_text(tmp_path / "journal", hooks))
        with start_blocking_portal() as portal:
            holder: dict[str, Lab] = {}

            def on_status(status: int, message: str) -> None:
                lab = holder.get("lab")
                if lab is not None:
                    with lab.changed:
                        lab.statuses.append((status, message))
                        lab.changed.notify_all()

            def on_release(lease: Lease, reason: str) -> None:
                holder["lab"].released.append((lease.name, reason))

            leases = LeaseSessions(config.build, hooks=config.hooks, on_status=on_status, on_release=on_release)
            with portal.wrap_async_context_manager(listen(leases, private_unix=True)) as listening:
                assert listening.unix_path is not None
                holder["lab"] = Lab(portal, leases, listening.unix_path)
                yield holder["lab"]

    return make


def client_of(lab: Lab) -> Any:
    return connect(lab.path, allow=["jmpcli_drivers.*"])


def journal(tmp_path: Path) -> list[str]:
    path = tmp_path / "journal"
    return path.read_text().split() if path.exists() else []


def test_each_lease_has_fresh_drivers_and_calls_between_leases_are_refused(lab: Any, tmp_path: Path) -> None:
    with lab() as lab:
        assert lab.leases.status.status == S.EXPORTER_STATUS_AVAILABLE
        with pytest.raises(ExporterNotReady, match=r"the exporter is not ready \(status: AVAILABLE\)"), client_of(lab):
            pass
        assert lab.begin("lease-1") == S.EXPORTER_STATUS_LEASE_READY
        with client_of(lab) as client:
            client.power.on()
            assert client.power.state() == "on"
            lab.end()
            # The client of lease 1 still holds its connection: refused, and told why.
            with pytest.raises(ExporterNotReady, match=r"not ready \(status: AVAILABLE\): waiting for a lease"):
                client.power.state()
        assert journal(tmp_path) == ["reset", "close"]

        assert lab.begin("lease-2", "bob") == S.EXPORTER_STATUS_LEASE_READY
        with client_of(lab) as client:
            assert client.power.state() == "off"  # nothing of lease 1's state
        lab.end()
        assert journal(tmp_path) == ["reset", "close", "reset", "close"]
    assert lab.names() == ["LEASE_READY", "AVAILABLE", "LEASE_READY", "AVAILABLE", "OFFLINE"]
    assert lab.released == []


def test_shell_and_j_at_an_exporter_between_leases_exit_1_with_its_reason(lab: Any, commands: Any) -> None:
    # Reached, and it says why it takes no calls: 1 as for drivers that cannot start, not 3 (unreachable).
    with lab() as lab:
        shell = commands.run("jmp", "shell", "--host", lab.path, "--", "echo", "never")
        j = commands.run("j", "power", "on", JUMPSTARTER_HOST=lab.path)
    refused = f"the exporter at {lab.path}: the exporter is not ready (status: AVAILABLE): waiting for a lease"
    assert (shell.returncode, shell.stdout, shell.stderr) == (1, "", f"jmp: error: {refused}\n"), shell
    assert (j.returncode, j.stdout, j.stderr) == (1, "", f"j: error: {refused}\n"), j


def test_get_status_reports_the_lease(lab: Any) -> None:
    with lab() as lab:
        for stub in lab.stub():
            status = stub.GetStatus(jumpstarter_pb2.GetStatusRequest(), timeout=5)
            assert status.status == S.EXPORTER_STATUS_AVAILABLE
            lab.begin("lease-9")
            status = stub.GetStatus(jumpstarter_pb2.GetStatusRequest(), timeout=5)
            assert (status.status, status.message) == (S.EXPORTER_STATUS_LEASE_READY, "serving lease lease-9")
            assert status.previous_status == S.EXPORTER_STATUS_AVAILABLE
            with pytest.raises(grpc.RpcError) as refused:
                lab.end()
                stub.GetReport(empty_pb2.Empty(), timeout=5)
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "not ready" in str(refused.value.details())


def test_get_status_waits_for_the_next_status_and_misses_none(lab: Any) -> None:
    # Each call names the version seen: the answer is the status that followed it, once there is one,
    # even one that lasted an instant (the failed hook, then AVAILABLE again when the lease is ended).
    request = jumpstarter_pb2.GetStatusRequest()
    with lab(hook("beforeLease", "echo it broke; exit 5", "endLease")) as lab:
        for stub in lab.stub():
            seen = stub.GetStatus(request, timeout=5)
            assert seen.status == S.EXPORTER_STATUS_AVAILABLE
            waiting = stub.GetStatus.future(request, metadata=((STATUS_AFTER_METADATA_KEY, str(seen.status_version)),),
                                            timeout=30)  # fmt: skip
            assert lab.begin("lease-3") == S.EXPORTER_STATUS_BEFORE_LEASE_HOOK_FAILED
            answers = [waiting.result()]
            assert waiting.initial_metadata() == ((STATUS_AFTER_METADATA_KEY, "1"),)  # it says it waited
            while answers[-1].status_version < lab.leases.status.version:
                metadata = ((STATUS_AFTER_METADATA_KEY, str(answers[-1].status_version)),)
                answers.append(stub.GetStatus(request, metadata=metadata, timeout=5))
            names = [S.ExporterStatus.Name(a.status).removeprefix("EXPORTER_STATUS_") for a in answers]
            assert names == ["BEFORE_LEASE_HOOK", "BEFORE_LEASE_HOOK_FAILED", "AVAILABLE"]
            assert [a.status_version for a in answers] == [seen.status_version + n for n in (1, 2, 3)]
            assert answers[1].message == "beforeLease hook exited with code 5\nbeforeLease hook output:\nit broke"


def test_end_session_ends_the_lease_and_leaves_its_release_to_the_client(lab: Any, tmp_path: Path) -> None:
    with lab() as lab:
        lab.begin("lease-3")
        for stub in lab.stub():
            answer = stub.EndSession(jumpstarter_pb2.EndSessionRequest(), timeout=10)
            assert answer.success
        assert lab.leases.lease is None and journal(tmp_path) == ["reset", "close"]
        assert lab.released == []  # the client deletes its lease, after seeing AVAILABLE through its tunnel


def test_drivers_that_cannot_start_end_the_lease(lab: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with lab() as lab:
        monkeypatch.setattr(lab.leases, "_build", lambda: (_ for _ in ()).throw(OSError("the relay does not answer")))
        assert lab.begin("lease-4") == S.EXPORTER_STATUS_AVAILABLE
        assert lab.released == [("lease-4", "the drivers could not start: OSError: the relay does not answer")]


BEFORE_ON = """\
hooks:
  beforeLease:
    script: |
      echo "preparing $LEASE_NAME for $CLIENT_NAME on a terminal: $(tty >/dev/null && echo yes)"
      j power on
    timeout: 20
"""


def test_a_before_lease_hook_drives_the_leases_drivers(lab: Any, tmp_path: Path) -> None:
    with lab(BEFORE_ON) as lab:
        assert lab.begin("lease-5", "alice") == S.EXPORTER_STATUS_LEASE_READY
        with client_of(lab) as client:
            assert client.power.state() == "on"  # the hook's `j power on`, in this lease's session
        lab.end()
    assert lab.names() == ["BEFORE_LEASE_HOOK", "LEASE_READY", "AVAILABLE", "OFFLINE"]
    assert journal(tmp_path) == ["reset", "close"]  # one session: the hook's and the client's


def test_hook_output_reaches_the_lease_clients_marked_as_hook_output(lab: Any, tmp_path: Path) -> None:
    go = tmp_path / "go"
    hooks = f"""\
hooks:
  beforeLease:
    script: |
      while [ ! -e {go} ]; do sleep 0.05; done
      echo "before $LEASE_NAME"
  afterLease:
    script: echo "after $CLIENT_NAME"
"""
    with lab(hooks) as lab:
        beginning = lab.portal.start_task_soon(lab.leases.begin_lease, "lease-6", "carol")
        lab.wait_for(S.EXPORTER_STATUS_BEFORE_LEASE_HOOK)
        for stub in lab.stub():
            records = stub.LogStream(empty_pb2.Empty(), timeout=20)
            records.initial_metadata()  # the stream is open: it gets every record from now on
            go.touch()
            assert hook_line(records, "before lease-6") == S.LOG_SOURCE_BEFORE_LEASE_HOOK
            assert beginning.result(timeout=10) == S.EXPORTER_STATUS_LEASE_READY
            ending = lab.portal.start_task_soon(lab.leases.end_lease)
            assert hook_line(records, "after carol") == S.LOG_SOURCE_AFTER_LEASE_HOOK
            ending.result(timeout=10)
            records.cancel()


def hook_line(records: Any, text: str) -> int:
    for record in records:
        if record.message == text:
            return int(record.source)
    raise AssertionError(f"{text!r} never came")


def hook(kind: str, script: str, on_failure: str, timeout: int = 20) -> str:
    return f"hooks:\n  {kind}:\n    script: {script!r}\n    timeout: {timeout}\n    onFailure: {on_failure}\n"


def test_a_hook_past_its_timeout_is_stopped_with_its_processes(lab: Any, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    script = f"sleep 60 & echo $$ $! > {pids}; wait"
    with lab(hook("beforeLease", script, "endLease", timeout=1)) as lab:
        assert lab.begin("lease-7") == S.EXPORTER_STATUS_BEFORE_LEASE_HOOK_FAILED
        for pid in map(int, pids.read_text().split()):
            assert not alive(pid), f"process {pid} of the hook is still running"
        reason = "beforeLease hook ran past its timeout of 1 s: its processes were stopped"
        assert lab.released == [("lease-7", reason)]
        assert lab.names() == ["BEFORE_LEASE_HOOK", "BEFORE_LEASE_HOOK_FAILED", "AVAILABLE"]
        assert journal(tmp_path) == ["reset", "close"]  # the lease is over: drivers closed
        with pytest.raises(ExporterNotReady), client_of(lab):
            pass


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def test_warn_goes_on(lab: Any) -> None:
    with lab(hook("beforeLease", "echo failing; exit 3", "warn")) as lab:
        assert lab.begin("lease-8") == S.EXPORTER_STATUS_LEASE_READY
        assert (
            lab.leases.status.message == "serving lease lease-8 (after a warning: beforeLease hook exited with code 3)"
            "\nbeforeLease hook output:\nfailing"  # the tail of its output, for the lab's timeline
        )
        with client_of(lab) as client:
            assert client.power.state() == "off"
        assert lab.released == []


def test_end_lease_on_an_after_lease_failure_reports_it_and_stays_available(lab: Any) -> None:
    with lab(hook("afterLease", "exit 4", "endLease")) as lab:
        lab.begin("lease-10")
        lab.end()
        assert lab.names() == ["LEASE_READY", "AFTER_LEASE_HOOK", "AFTER_LEASE_HOOK_FAILED", "AVAILABLE"]
        assert not lab.leases.stopping.is_set()
        assert lab.begin("lease-11") == S.EXPORTER_STATUS_LEASE_READY


@pytest.mark.parametrize("kind", ["beforeLease", "afterLease"])
def test_exit_stops_the_exporter_with_a_clear_message(lab: Any, kind: str) -> None:
    with lab(hook(kind, "exit 5", "exit")) as lab:
        status = lab.begin("lease-12")
        if kind == "afterLease":
            assert status == S.EXPORTER_STATUS_LEASE_READY
            lab.end()
        failed = "BEFORE_LEASE_HOOK_FAILED" if kind == "beforeLease" else "AFTER_LEASE_HOOK_FAILED"
        assert lab.names()[-1] == failed
        assert lab.leases.stopping.is_set()
        assert (
            lab.leases.stop_reason == f"{kind} hook exited with code 5, and its onFailure is exit: the exporter stops"
        )
        with pytest.raises(ExporterNotReady, match="the exporter is stopping"):
            lab.begin("lease-13")
