"""Leases on a real controller process: queueing, expiry, extension, transfer, scheduling, offline exporters.

The exporters are `SimulatedExporter`s: lightweight peers speaking ControllerService exactly
as the original's exporter does (the interop tests run the original itself).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import anyio
import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from jumpstarter.client.v1 import client_pb2
from jumpstarter.testing import Commands
from jumpstarter.v1 import jumpstarter_pb2, router_pb2, router_pb2_grpc
from jumpstarter_controller.peers import Peer, bare
from testsupport.labcontroller import JMP, STEP, LabController, conditions, exporter_running, online, ready, until

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180)]


async def test_three_clients_one_board_in_order_with_positions(lab: LabController) -> None:
    board = lab.create("exporter", "board1", {"board": "rpi4"})
    configs = [lab.create("client", name) for name in ("alice", "bob", "carol")]
    async with (
        exporter_running(board) as exporter,
        Peer.from_config(configs[0]) as alice,
        Peer.from_config(configs[1]) as bob,
        Peer.from_config(configs[2]) as carol,
    ):
        await online(alice, "board1")
        first = await alice.create_lease("board=rpi4", seconds=60)
        assert ready(first), conditions(first)  # assigned inside CreateLease
        second = await bob.create_lease("board=rpi4", seconds=60)
        third = await carol.create_lease("board=rpi4", seconds=60)
        assert second.conditions[-1].message.startswith("1st in line for board=rpi4")
        assert third.conditions[-1].message.startswith("2nd in line for board=rpi4")

        await alice.delete_lease(bare(first.name))
        done = await alice.get_lease(bare(first.name))
        assert conditions(done) == [("Pending", "False", "Released"), ("Ready", "False", "Released")]
        second = await until(bob, bare(second.name), ready)
        third = await carol.get_lease(bare(third.name))
        assert third.conditions[-1].message.startswith("1st in line for board=rpi4")
        await bob.delete_lease(bare(second.name))
        await until(carol, bare(third.name), ready)
        # The exporter hears of the lease on its Status stream, after the controller granted it.
        with anyio.fail_after(10):
            while len(exporter.leases) < 3:  # noqa: ASYNC110 (the simulated exporter has no event for it)
                await anyio.sleep(0.01)
        assert exporter.leases == [bare(first.name), bare(second.name), bare(third.name)]
        with pytest.raises(grpc.aio.AioRpcError) as twice:
            await bob.delete_lease(bare(second.name))
        assert twice.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_expiry_extension_and_no_silent_shortening(lab: LabController) -> None:
    board = lab.create("exporter", "board1", {"board": "rpi4"})
    alice_config = lab.create("client", "alice")
    async with exporter_running(board) as exporter, Peer.from_config(alice_config) as alice:
        await online(alice, "board1")
        lease = await alice.create_lease("board=rpi4", seconds=2)
        assert ready(lease)
        name = bare(lease.name)
        longer = client_pb2.Lease(name=lease.name, duration=Duration(seconds=3))
        updated = await alice.client.UpdateLease(client_pb2.UpdateLeaseRequest(lease=longer))
        assert updated.duration.seconds == 3
        shorter = client_pb2.Lease(name=lease.name, duration=Duration(seconds=1))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await alice.client.UpdateLease(client_pb2.UpdateLeaseRequest(lease=shorter))
        assert str(refused.value.details()).startswith(f"this would shorten lease {name} (ending 2s earlier): ")
        assert (await alice.get_lease(name)).duration.seconds == 3  # unchanged
        ended = await until(alice, name, lambda x: x.HasField("effective_end_time"))
        assert conditions(ended)[-1] == ("Ready", "False", "Expired")
        assert ("Pending", "False", "Expired") in conditions(ended)
        assert 2.5 < ended.effective_duration.seconds + ended.effective_duration.nanos / 1e9 < 5
        with anyio.fail_after(STEP):
            while exporter.current is not None:  # told leased=false
                await exporter.changed.wait()


async def test_transfer_within_the_namespace(lab: LabController) -> None:
    board = lab.create("exporter", "board1", {"board": "rpi4"})
    alice_config, bob_config = lab.create("client", "alice"), lab.create("client", "bob")
    async with (
        exporter_running(board),
        Peer.from_config(alice_config) as alice,
        Peer.from_config(bob_config) as bob,
    ):
        await online(alice, "board1")
        lease = await alice.create_lease("board=rpi4", seconds=60)
        moved = client_pb2.Lease(name=lease.name, client="namespaces/default/clients/bob")
        updated = await alice.client.UpdateLease(client_pb2.UpdateLeaseRequest(lease=moved))
        assert updated.client == "namespaces/default/clients/bob"
        with pytest.raises(grpc.aio.AioRpcError) as denied:
            await alice.controller.Dial(jumpstarter_pb2.DialRequest(lease_name=bare(lease.name)))
        assert "permission denied" in str(denied.value.details())
        dial = await bob.controller.Dial(jumpstarter_pb2.DialRequest(lease_name=bare(lease.name)))
        assert dial.router_endpoint == lab.endpoint
        elsewhere = client_pb2.Lease(name=lease.name, client="namespaces/other/clients/bob")
        with pytest.raises(grpc.aio.AioRpcError):
            await bob.client.UpdateLease(client_pb2.UpdateLeaseRequest(lease=elsewhere))


async def test_scheduled_lease_waits_for_its_begin_time(lab: LabController) -> None:
    board = lab.create("exporter", "board1", {"board": "rpi4"})
    alice_config = lab.create("client", "alice")
    async with exporter_running(board), Peer.from_config(alice_config) as alice:
        await online(alice, "board1")
        begin = time.time() + 1.5
        lease = await alice.create_lease(
            "board=rpi4", seconds=30, begin_time=Timestamp(seconds=int(begin), nanos=int(begin % 1 * 1e9))
        )
        assert not ready(lease)
        started = await until(alice, bare(lease.name), ready)
        assert started.effective_begin_time.seconds >= int(begin)


async def test_exporter_lost_mid_lease_keeps_the_lease_and_resumes(lab: LabController) -> None:
    board = lab.create("exporter", "board1", {"board": "rpi4"})
    alice_config = lab.create("client", "alice")
    async with Peer.from_config(alice_config) as alice:
        async with exporter_running(board):
            await online(alice, "board1")
            lease = await alice.create_lease("board=rpi4", seconds=60)
        # The exporter's streams are gone: the lease stays, the client is told the exporter is unreachable.
        with pytest.raises(grpc.aio.AioRpcError) as offline:
            with anyio.fail_after(STEP):
                while True:
                    await alice.controller.Dial(jumpstarter_pb2.DialRequest(lease_name=bare(lease.name)))
                    await anyio.sleep(0.05)
        assert offline.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "offline" in str(offline.value.details())
        assert ready(await alice.get_lease(bare(lease.name)))
        # Back without Register: it gets the same lease again.
        async with exporter_running(board, register=False) as again:
            with anyio.fail_after(STEP):
                while again.current is None:
                    await again.changed.wait()
            assert again.current == bare(lease.name)
            dial = await alice.controller.Dial(jumpstarter_pb2.DialRequest(lease_name=bare(lease.name)))
            assert dial.router_token


async def test_dial_pairs_client_and_exporter_through_the_built_in_router(lab: LabController) -> None:
    board = lab.create("exporter", "board1", {"board": "rpi4"})
    alice_config = lab.create("client", "alice")
    ca = (lab.state_dir / "ca.pem").read_bytes()
    async with exporter_running(board) as exporter, Peer.from_config(alice_config) as alice:
        await online(alice, "board1")
        lease = await alice.create_lease("board=rpi4", seconds=60)
        dial = await alice.controller.Dial(jumpstarter_pb2.DialRequest(lease_name=bare(lease.name)))
        with anyio.fail_after(STEP):
            while not exporter.dials:
                await exporter.dialled.wait()
        assert exporter.dials == [(dial.router_endpoint, dial.router_token)]  # the same pair on both sides
        credentials = grpc.ssl_channel_credentials(root_certificates=ca)
        metadata = (("authorization", f"Bearer {dial.router_token}"),)
        async with (
            grpc.aio.secure_channel(dial.router_endpoint, credentials) as one,
            grpc.aio.secure_channel(dial.router_endpoint, credentials) as two,
        ):
            client_side = router_pb2_grpc.RouterServiceStub(one).Stream(metadata=metadata)
            exporter_side = router_pb2_grpc.RouterServiceStub(two).Stream(metadata=metadata)
            await client_side.write(router_pb2.StreamRequest(payload=b"PRI * HTTP/2.0"))
            with anyio.fail_after(STEP):
                frame = await exporter_side.read()
            assert frame.payload == b"PRI * HTTP/2.0"
            await exporter_side.write(router_pb2.StreamRequest(payload=b"back"))
            with anyio.fail_after(STEP):
                assert (await client_side.read()).payload == b"back"
            client_side.cancel()
            exporter_side.cancel()


async def test_a_disabled_exporter_finishes_its_lease_and_takes_no_new_one(lab: LabController) -> None:
    board = lab.create("exporter", "board1", {"board": "rpi4"})
    configs = [lab.create("client", name) for name in ("alice", "bob", "carol")]
    remote = ("--endpoint", lab.endpoint, "--tls-ca", str(lab.state_dir / "ca.pem"),
              "--token-file", str(lab.state_dir / "admin.token"))  # fmt: skip

    async def admin(*args: str, remotely: bool = False) -> str:
        how = remote if remotely else ("--state-dir", str(lab.state_dir))
        result = await anyio.to_thread.run_sync(lambda: lab.commands.run(*JMP, "admin", *how, *args))
        assert result.returncode == 0 and "Traceback" not in result.stderr, result
        return result.stdout

    async with (
        exporter_running(board),
        Peer.from_config(configs[0]) as alice,
        Peer.from_config(configs[1]) as bob,
        Peer.from_config(configs[2]) as carol,
    ):
        await online(alice, "board1")
        first = await alice.create_lease("board=rpi4", seconds=60)
        assert ready(first), conditions(first)
        waiting = await bob.create_lease("board=rpi4", seconds=60)
        said = await admin("disable", "exporter", "board1")  # on the controller's host
        assert "board1 disabled: its current lease runs to its end" in said
        assert "was disabled already" in await admin("disable", "exporter", "board1", remotely=True)
        listing = (await admin("get", "exporters")).splitlines()
        assert listing[0].split()[:4] == ["NAMESPACE", "NAME", "ONLINE", "ENABLED"]
        assert listing[1].split()[:5] == ["default", "board1", "yes", "no", bare(first.name)]
        assert ready(await alice.get_lease(bare(first.name)))  # the current lease goes on
        refused = await carol.create_lease("board=rpi4", seconds=60)  # nothing enabled could ever serve it
        assert ("Unsatisfiable", "True", "AllDisabled") in conditions(refused)

        await alice.delete_lease(bare(first.name))
        # The exporter is free again (no lease): bob's lease still waits, and says why.
        await until(bob, bare(waiting.name), lambda lease: "every matching exporter is disabled" in
                    lease.conditions[-1].message)  # fmt: skip
        assert "board1 enabled: it takes new leases again" in await admin("enable", "exporter", "board1", remotely=True)
        await until(bob, bare(waiting.name), ready)

        events = [line for line in (await admin("get", "events")).splitlines() if "board1" in line]
        whats = [(e.split()[1], " ".join(e.split()[2:4])) for e in events]
        disabled = whats.index(("admin:admin", "exporter disabled"))
        enabled = whats.index(("admin:admin", "exporter enabled"))
        acquired = [i for i, (who, what) in enumerate(whats) if what == "lease acquired"]
        assert acquired[0] < disabled < enabled < acquired[1], events  # bob's only after the enable
        assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d ", events[disabled])  # when
        assert "jmp admin: finishes its current lease" in events[disabled]
        bad = await anyio.to_thread.run_sync(lambda: lab.admin("disable", "exporter", "nosuch"))
        assert (
            bad.returncode == 1 and bad.stderr.count("\n") == 1 and "there is no exporter default/nosuch" in bad.stderr
        )


async def test_a_policy_by_client_label_caps_the_duration_and_serves_first(commands: Commands, tmp_path: Path) -> None:
    config = tmp_path / "controller.yaml"
    config.write_text("policies:\n- {name: ci, client_selector: team=ci, max_duration: 1h, priority: 10}\n")
    lab = LabController.start(commands, tmp_path / "state", "--config", str(config))
    board = lab.create("exporter", "board1", {"board": "rpi4"})
    holder, human, bot = (lab.create("client", "holder"), lab.create("client", "human"),
                          lab.create("client", "bot", {"team": "ci"}))  # fmt: skip
    async with (
        exporter_running(board),
        Peer.from_config(holder) as holding,
        Peer.from_config(human) as waiting,
        Peer.from_config(bot) as ci,
    ):
        await online(holding, "board1")
        first = await holding.create_lease("board=rpi4", seconds=60)
        assert ready(first), conditions(first)
        older = await waiting.create_lease("board=rpi4", seconds=7200)  # no policy applies to it: 2 h is fine
        with pytest.raises(grpc.aio.AioRpcError) as capped:
            await ci.create_lease("board=rpi4", seconds=7200)
        assert capped.value.details() == "the duration 2h exceeds the 1h that policy ci allows"
        urgent = await ci.create_lease("board=rpi4", seconds=60)
        longer = client_pb2.Lease(name=urgent.name, duration=Duration(seconds=5400))
        with pytest.raises(grpc.aio.AioRpcError) as extended:  # an extension is capped as a new lease is
            await ci.client.UpdateLease(client_pb2.UpdateLeaseRequest(lease=longer))
        assert extended.value.details() == "the duration 1h30m exceeds the 1h that policy ci allows"
        assert urgent.conditions[-1].message.startswith("1st in line for board=rpi4")  # priority before age
        older = await waiting.get_lease(bare(older.name))
        assert older.conditions[-1].message.startswith("2nd in line for board=rpi4")
        await holding.delete_lease(bare(first.name))
        await until(ci, bare(urgent.name), ready)
        assert not ready(await waiting.get_lease(bare(older.name)))
