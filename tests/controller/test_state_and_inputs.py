"""A real controller process: state kept across kill -9, bad inputs refused with a clear error, tokens revoked."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import anyio
import grpc
import pytest
import yaml
from google.protobuf.duration_pb2 import Duration

from jumpstarter.client.v1 import client_pb2, client_pb2_grpc
from jumpstarter.testing import Commands
from jumpstarter.v1 import jumpstarter_pb2, kubernetes_pb2
from jumpstarter_controller.credentials import Identity, mint_identity_token
from jumpstarter_controller.peers import Peer, bare
from jumpstarter_controller.state import StateDir
from testsupport.labcontroller import STEP, LabController, exporter_running, online, ready, until

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180)]


async def refused(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call  # type: ignore[misc]
    return error.value


async def test_kill_9_and_restart_loses_nothing(lab: LabController) -> None:
    board = lab.create("exporter", "board1", {"board": "rpi4"})
    alice_config, bob_config = lab.create("client", "alice"), lab.create("client", "bob")
    async with Peer.from_config(alice_config) as alice, Peer.from_config(bob_config) as bob:
        async with exporter_running(board) as exporter:
            await online(alice, "board1")
            active = await alice.create_lease("board=rpi4", seconds=120)
            waiting = await bob.create_lease("board=rpi4", seconds=120)
            assert ready(active) and not ready(waiting)
            with anyio.fail_after(STEP):
                while exporter.current != bare(active.name):  # it serves the lease
                    await exporter.changed.wait()
            lab.kill()  # SIGKILL: nothing is flushed on the way out
        lab.restart()
        # The exporter comes back with Status only, as the original's does within seconds.
        async with exporter_running(board, register=False) as again:
            with anyio.fail_after(STEP):
                while again.current is None:
                    await again.changed.wait()
            assert again.current == bare(active.name) == exporter.leases[0]
            assert ready(await until(alice, bare(active.name), ready))
            still = await bob.get_lease(bare(waiting.name))
            assert still.conditions[-1].message.startswith("1st in line for board=rpi4")
            await alice.delete_lease(bare(active.name))
            await until(bob, bare(waiting.name), ready)
    events = lab.admin("get", "events")
    assert "lease acquired" in events.stdout and "lease released" in events.stdout


async def test_bad_requests_are_refused_and_change_nothing(commands: Commands, tmp_path: Path) -> None:
    config = tmp_path / "controller.yaml"
    config.write_text("limits: {leases_per_client: 3}\npolicies:\n- {name: short, client: alice, max_duration: 1h}\n")
    lab = LabController.start(commands, tmp_path / "state", "--config", str(config))
    board = lab.create("exporter", "board1", {"board": "rpi4"})
    alice_config = lab.create("client", "alice")
    async with exporter_running(board), Peer.from_config(alice_config) as alice:
        await online(alice, "board1")
        cases = [
            ("board in rpi4", grpc.StatusCode.UNKNOWN, "InvalidSelector"),
            ("board=" + "x" * 70, grpc.StatusCode.UNKNOWN, "at most 63"),
            ("", grpc.StatusCode.INVALID_ARGUMENT, "needs a selector"),
            ("board=nope", None, "NoAccess"),
        ]
        for selector, code, text in cases:
            if code is None:
                lease = await alice.create_lease(selector, seconds=60)
                assert [(c.type, c.status, c.reason) for c in lease.conditions] == [
                    ("Pending", "False", "NoAccess"),
                    ("Unsatisfiable", "True", "NoAccess"),
                ]
                continue
            error = await refused(alice.create_lease(selector, seconds=60))
            assert (error.code(), text in str(error.details())) == (code, True), error
        too_long = await refused(alice.create_lease("board=rpi4", seconds=7200))
        assert "policy short" in str(too_long.details())
        bad_name = client_pb2.CreateLeaseRequest(
            parent="namespaces/default", lease_id="Not_A_Name", lease=client_pb2.Lease(selector="board=rpi4")
        )
        assert (await refused(alice.client.CreateLease(bad_name))).code() == grpc.StatusCode.INVALID_ARGUMENT
        other = client_pb2.CreateLeaseRequest(
            parent="namespaces/other", lease=client_pb2.Lease(selector="board=rpi4", duration=Duration(seconds=5))
        )
        mismatch = await refused(alice.client.CreateLease(other))
        assert mismatch.code() == grpc.StatusCode.PERMISSION_DENIED and "namespace mismatch" in str(mismatch.details())
        bad_filter = client_pb2.ListExportersRequest(parent="namespaces/default", filter="a in (")
        assert (await refused(alice.client.ListExporters(bad_filter))).code() == grpc.StatusCode.INVALID_ARGUMENT
        # The per-client limit: 3 active leases, then a clear refusal.
        for _ in range(3):
            await alice.create_lease("board=rpi4", seconds=60)
        limit = await refused(alice.create_lease("board=rpi4", seconds=60))
        assert limit.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "delete some first" in str(limit.details())
        listed = await alice.client.ListLeases(client_pb2.ListLeasesRequest(parent="namespaces/default"))
        assert len(listed.leases) == 3  # only the three accepted ones are active
        everything = await alice.client.ListLeases(
            client_pb2.ListLeasesRequest(parent="namespaces/default", only_active=False)
        )
        assert len(everything.leases) == 4  # and the unsatisfiable one, ended


async def test_tokens_expired_foreign_deleted_and_rotated(lab: LabController, tmp_path: Path) -> None:
    alice_config = lab.create("client", "alice")
    state = StateDir(lab.state_dir, create=False)
    expired, _ = mint_identity_token(state.signing_key(), Identity("client", "default", "alice", 1), lifetime=-60)
    foreign_key = StateDir(tmp_path / "elsewhere").signing_key()
    foreign, _ = mint_identity_token(foreign_key, Identity("client", "default", "alice", 1))
    request = client_pb2.ListExportersRequest(parent="namespaces/default")
    for token, text in ((expired, "token is expired"), (foreign, "not one of this controller's tokens")):
        async with Peer.from_config(alice_config, token=token) as peer:
            error = await refused(peer.client.ListExporters(request))
            assert error.code() == grpc.StatusCode.UNKNOWN and text in str(error.details())
    async with Peer.from_config(alice_config) as alice:
        await alice.client.ListExporters(request)
        rotated = tmp_path / "alice-new.yaml"
        assert lab.admin("rotate", "client", "alice", "--out", str(rotated)).returncode == 0
        error = await refused(alice.client.ListExporters(request))
        assert "rotated" in str(error.details())
    async with Peer.from_config(rotated) as alice:
        await alice.client.ListExporters(request)
        assert lab.admin("delete", "client", "alice").returncode == 0
        error = await refused(alice.client.ListExporters(request))
        assert "deleted" in str(error.details())
        # An exporter's token is no client's.
        assert (await refused(alice.controller.Dial(jumpstarter_pb2.DialRequest(lease_name="x")))).code() == (
            grpc.StatusCode.UNKNOWN
        )


def test_admin_files_formats_and_errors(lab: LabController, commands: Commands, tmp_path: Path) -> None:
    client = lab.create("client", "alice", {"team": "a"}, namespace="lab")
    exporter = lab.create("exporter", "board1", {"board": "rpi4"}, namespace="lab")
    for path in (client, exporter, lab.state_dir / "admin.token"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = yaml.safe_load(client.read_text())
    assert document["kind"] == "ClientConfig" and document["endpoint"] == lab.endpoint
    assert document["metadata"] == {"namespace": "lab", "name": "alice"}
    assert base64.b64decode(document["tls"]["ca"]) == (lab.state_dir / "ca.pem").read_bytes()
    assert yaml.safe_load(exporter.read_text())["export"] == {}
    token = document["token"]
    listing = lab.admin("get", "clients")
    assert "alice" in listing.stdout and token not in listing.stdout + listing.stderr
    again = lab.admin("create", "client", "alice", "--namespace", "lab", "--out", str(tmp_path / "x.yaml"))
    assert again.returncode == 1 and again.stderr.count("\n") == 1 and "exists already" in again.stderr
    bad = lab.admin("create", "exporter", "Bad_Name", "--out", str(tmp_path / "y.yaml"))
    assert bad.returncode == 1 and "invalid exporter name" in bad.stderr and "Traceback" not in bad.stderr
    huge = lab.admin("create", "exporter", "b2", "--label", "k=" + "v" * 100, "--out", str(tmp_path / "z.yaml"))
    assert huge.returncode == 1 and "at most 63" in huge.stderr
    assert not (tmp_path / "z.yaml").exists()
    remote = commands.run(
        "jmp", "admin", "--endpoint", lab.endpoint, "--tls-ca", str(lab.state_dir / "ca.pem"),
        "--token-file", str(lab.state_dir / "admin.token"), "get", "exporters",
    )  # fmt: skip
    assert remote.returncode == 0 and "board1" in remote.stdout, remote
    wrong = commands.run(
        "jmp", "admin", "--endpoint", lab.endpoint, "--tls-ca", str(lab.state_dir / "ca.pem"),
        "--token-file", str(client), "get", "exporters",
    )  # fmt: skip
    assert wrong.returncode == 1 and "Traceback" not in wrong.stderr, wrong
    lab.kill()
    down = lab.admin("get", "clients")
    assert down.returncode == 1 and "cannot reach the controller" in down.stderr


async def test_a_call_without_a_token_is_refused_and_the_legacy_api_works(lab: LabController) -> None:
    board = lab.create("exporter", "board1", {"board": "rpi4"})
    alice_config = lab.create("client", "alice")
    credentials = grpc.ssl_channel_credentials(root_certificates=(lab.state_dir / "ca.pem").read_bytes())
    async with grpc.aio.secure_channel(lab.endpoint, credentials) as channel:
        stranger = client_pb2_grpc.ClientServiceStub(channel)
        request = client_pb2.ListExportersRequest(parent="namespaces/default", filter="x" * 1_000_000)
        error = await refused(stranger.ListExporters(request))
        assert error.code() == grpc.StatusCode.UNKNOWN and "no token" in str(error.details())
    async with exporter_running(board), Peer.from_config(alice_config) as alice:
        await online(alice, "board1")
        selector = kubernetes_pb2.LabelSelector(match_labels={"board": "rpi4"})
        created = await alice.controller.RequestLease(
            jumpstarter_pb2.RequestLeaseRequest(duration=Duration(seconds=60), selector=selector)
        )
        lease = await alice.controller.GetLease(jumpstarter_pb2.GetLeaseRequest(name=created.name))
        assert lease.conditions[-1].type == "Ready" and lease.HasField("exporter_uuid")
        assert dict(lease.selector.match_labels) == {"board": "rpi4"}
        names = await alice.controller.ListLeases(jumpstarter_pb2.ListLeasesRequest())
        assert list(names.names) == [created.name]
        await alice.controller.ReleaseLease(jumpstarter_pb2.ReleaseLeaseRequest(name=created.name))
        await alice.controller.ReleaseLease(jumpstarter_pb2.ReleaseLeaseRequest(name=created.name))  # idempotent
        assert not (await alice.controller.ListLeases(jumpstarter_pb2.ListLeasesRequest())).names
        audit = await refused(alice.controller.AuditStream(iter(())))
        assert audit.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_an_exporter_registering_huge_labels_or_reports_is_refused_and_changes_nothing(
    lab: LabController,
) -> None:
    board = lab.create("exporter", "board1", {"board": "rpi4"})
    report = jumpstarter_pb2.DriverInstanceReport(uuid="00000000-0000-0000-0000-000000000001")
    async with Peer.from_config(board) as exporter:
        huge = jumpstarter_pb2.RegisterRequest(labels={"jumpstarter.dev/name": "x" * 100}, reports=[report])
        error = await refused(exporter.controller.Register(huge))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "at most 63" in str(error.details())
        many = jumpstarter_pb2.RegisterRequest(reports=[report] * 1001)
        error = await refused(exporter.controller.Register(many))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "at most 1000" in str(error.details())
    listing = await anyio.to_thread.run_sync(lambda: lab.admin("get", "exporters"))
    row = listing.stdout.splitlines()[1].split()
    assert row[1] == "board1" and row[-1] == "board=rpi4", listing.stdout  # its labels as they were


def test_admin_subcommands_help_without_a_controller_and_say_what_is_missing(commands: Commands) -> None:
    helped = commands.run("jmp", "admin", "create", "--help")
    assert helped.returncode == 0 and "--out FILE" in helped.stdout, helped
    missing = commands.run("jmp", "admin", "get", "clients")
    assert missing.returncode == 2 and "give --state-dir DIR" in missing.stderr, missing
    both = commands.run("jmp", "admin", "--state-dir", "s", "--endpoint", "h:1", "get", "clients")
    assert both.returncode == 2 and "not both" in both.stderr, both
