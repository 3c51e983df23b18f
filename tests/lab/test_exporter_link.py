"""Our `jmp exporter run` in a lab: real `jmp controller run`, `jmp router run` and exporter processes.

Clients are Python peers (`Peer`: ClientService and Dial) with a tunnel through the router,
as a lease shell has; the original 0.9.0 client is in test_original_client_lab.py.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import anyio
import pytest
import yaml

from jumpstarter.client import connect
from jumpstarter.testing import Commands
from jumpstarter.v1 import common_pb2
from jumpstarter_controller.peers import Peer, bare
from jumpstarter_controller.state import StateDir
from testsupport.lab_exporter import (
    ca_of,
    exporter_status,
    lab_exporter_config,
    power_state,
    start_lab_exporter,
    statuses,
    switch_on,
    tunnel,
)
from testsupport.labcontroller import LabController, conditions, online, ready, until
from testsupport.router import start_router

AVAILABLE = common_pb2.EXPORTER_STATUS_AVAILABLE
LEASE_READY = common_pb2.EXPORTER_STATUS_LEASE_READY
# How long the controller stays away in the outage test: longer than the original exporter survives (3 to 5 s).
OUTAGE_SECONDS = 8.0

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("one_event_loop"), pytest.mark.timeout(120)]


async def test_leases_through_the_router_each_with_a_fresh_session(
    lab: LabController, commands: Commands, tmp_path: Path
) -> None:
    config = lab_exporter_config(lab, "board1", {"board": "x"})
    exporter = start_lab_exporter(commands, config)
    client = lab.create("client", "alice")
    async with Peer.from_config(client) as alice:
        await online(alice, "board1")
        first = await alice.create_lease("board=x", seconds=60)
        assert ready(first), conditions(first)
        async with tunnel(alice, bare(first.name), ca_of(client), tmp_path) as path:
            assert await anyio.to_thread.run_sync(power_state, path) is False
            await anyio.to_thread.run_sync(switch_on, path)
            assert await anyio.to_thread.run_sync(power_state, path) is True  # a second connection, same session
        await alice.delete_lease(bare(first.name))

        second = await until(alice, bare((await alice.create_lease("board=x", seconds=60)).name), ready)
        async with tunnel(alice, bare(second.name), ca_of(client), tmp_path) as path:
            assert await anyio.to_thread.run_sync(power_state, path) is False  # lease 1's state is gone
        await alice.delete_lease(bare(second.name))
    assert exporter.process.poll() is None
    assert statuses(lab, "board1")[:5] == ["Available", "LeaseReady", "Available", "LeaseReady", "Available"]


def hook(kind: str, script: str, on_failure: str, timeout: int = 20) -> dict[str, object]:
    return {"hooks": {kind: {"script": script, "onFailure": on_failure, "timeout": timeout}}}


async def test_hooks_statuses_and_their_output_reach_the_controller(
    lab: LabController, commands: Commands, tmp_path: Path
) -> None:
    hooks = {
        "beforeLease": {"script": "echo preparing for $CLIENT_NAME; j power on", "timeout": 30},
        "afterLease": {"script": "echo cleaning up; j power off", "timeout": 30},
    }
    config = lab_exporter_config(lab, "board1", {"board": "x"}, hooks=hooks)
    start_lab_exporter(commands, config)
    client = lab.create("client", "alice")
    async with Peer.from_config(client) as alice:
        await online(alice, "board1")
        lease = await alice.create_lease("board=x", seconds=60)
        await exporter_status(alice, "board1", LEASE_READY)  # as a lease shell waits for it
        async with tunnel(alice, bare(lease.name), ca_of(client), tmp_path) as path:
            assert await anyio.to_thread.run_sync(power_state, path) is True  # the beforeLease hook's doing
        await alice.delete_lease(bare(lease.name))
        await exporter_status(alice, "board1", AVAILABLE)  # after its afterLease hook
    assert statuses(lab, "board1") == ["Available", "BeforeLeaseHook", "LeaseReady", "AfterLeaseHook", "Available"]
    events = lab.admin("get", "events").stdout
    assert "beforeLease hook output:" in events and "preparing for alice" in events
    assert "afterLease hook output:" in events and "cleaning up" in events


async def test_sigterm_says_offline_and_unregisters(lab: LabController, commands: Commands) -> None:
    config = lab_exporter_config(lab, "board1", {"board": "x"})
    exporter = start_lab_exporter(commands, config)
    os.kill(exporter.pid, signal.SIGTERM)
    result = exporter.finish(30)
    assert result.returncode == 0, result
    assert "unregistered from the controller" in result.stderr
    assert statuses(lab, "board1")[-1] == "Offline"
    assert "exporter unregistered" in lab.admin("get", "events").stdout
    listed = lab.admin("get", "exporters").stdout
    assert "board1" in listed


async def test_sighup_finishes_the_lease_then_stops(lab: LabController, commands: Commands, tmp_path: Path) -> None:
    config = lab_exporter_config(lab, "board1", {"board": "x"})
    exporter = start_lab_exporter(commands, config)
    client = lab.create("client", "alice")
    async with Peer.from_config(client) as alice:
        await online(alice, "board1")
        lease = await alice.create_lease("board=x", seconds=60)
        async with tunnel(alice, bare(lease.name), ca_of(client), tmp_path) as path:
            await anyio.to_thread.run_sync(switch_on, path)
            os.kill(exporter.pid, signal.SIGHUP)
            exporter.wait_for(lambda out, err: "SIGHUP: no new lease" in err)
            assert await anyio.to_thread.run_sync(power_state, path) is True  # the lease goes on, same session
        waiting = await alice.create_lease("board=x", seconds=60)  # next in line: never served by this exporter
        await alice.delete_lease(bare(lease.name))
        result = await anyio.to_thread.run_sync(exporter.finish, 30)
        assert result.returncode == 0, result
        assert "unregistered from the controller" in result.stderr
        assert not ready(await alice.get_lease(bare(waiting.name)))
    assert "exporter unregistered" in lab.admin("get", "events").stdout


@pytest.mark.parametrize("on_failure", ["warn", "endLease", "exit"])
async def test_a_failing_before_lease_hook_does_what_on_failure_says(
    lab: LabController, commands: Commands, tmp_path: Path, on_failure: str
) -> None:
    config = lab_exporter_config(
        lab, "board1", {"board": "x"}, **hook("beforeLease", "echo it broke; exit 5", on_failure)
    )
    exporter = start_lab_exporter(commands, config)
    client = lab.create("client", "alice")
    async with Peer.from_config(client) as alice:
        await online(alice, "board1")
        lease = await alice.create_lease("board=x", seconds=60)
        name = bare(lease.name)
        if on_failure == "warn":
            async with tunnel(alice, name, ca_of(client), tmp_path) as path:
                assert await anyio.to_thread.run_sync(power_state, path) is False
            assert statuses(lab, "board1") == ["Available", "BeforeLeaseHook", "LeaseReady"]
            return
        released = await until(alice, name, lambda lease: lease.conditions[-1].reason == "Released")
        assert conditions(released)[-1] == ("Ready", "False", "Released")
    events = lab.admin("get", "events").stdout
    assert "BeforeLeaseHookFailed: beforeLease hook exited with code 5" in events and "it broke" in events
    if on_failure == "endLease":
        assert exporter.process.poll() is None
        return
    result = await anyio.to_thread.run_sync(exporter.finish, 30)
    assert result.returncode == 3, result
    assert "its onFailure is exit: the exporter stops" in result.stderr
    assert "exporter unregistered" in lab.admin("get", "events").stdout


async def test_a_hook_that_hangs_is_stopped_at_its_timeout(
    lab: LabController, commands: Commands, tmp_path: Path
) -> None:
    script = "echo waiting for the board; sleep 600"
    config = lab_exporter_config(lab, "board1", {"board": "x"}, **hook("beforeLease", script, "endLease", timeout=1))
    exporter = start_lab_exporter(commands, config)
    client = lab.create("client", "alice")
    async with Peer.from_config(client) as alice:
        await online(alice, "board1")
        lease = await alice.create_lease("board=x", seconds=60)
        await until(alice, bare(lease.name), lambda lease: lease.conditions[-1].reason == "Released")
    events = lab.admin("get", "events").stdout
    assert "beforeLease hook ran past its timeout of 1 s" in events and "waiting for the board" in events
    assert exporter.process.poll() is None


def _controller_with_a_router(commands: Commands, tmp_path: Path) -> tuple[LabController, str]:
    """A controller whose leases go through a separate `jmp router run` (sharing its state directory)."""
    state = StateDir(tmp_path / "state")
    state.ca(), state.signing_key()
    _, router = start_router(commands, "--controller-state", state.path, "--listen", "127.0.0.1:0")
    config = tmp_path / "controller.yaml"
    config.write_text(yaml.safe_dump({"routers": [{"endpoint": router}]}))
    return LabController.start(commands, state.path, "--config", str(config)), router


def calls_through(path: str, until_: threading.Event, count: list[int]) -> None:
    """One client connection (one tunnel) that keeps calling until told to stop."""
    with connect(path) as client:
        while not until_.is_set():
            client.power.on()
            count[0] += 1


async def test_controller_outage_mid_lease(commands: Commands, tmp_path: Path) -> None:
    lab, _ = _controller_with_a_router(commands, tmp_path)
    config = lab_exporter_config(lab, "board1", {"board": "x"})
    exporter = start_lab_exporter(commands, config)
    client = lab.create("client", "alice")
    stop, count = threading.Event(), [0]
    async with Peer.from_config(client) as alice:
        await online(alice, "board1")
        lease = await alice.create_lease("board=x", seconds=120)
        async with tunnel(alice, bare(lease.name), ca_of(client), tmp_path) as path, anyio.create_task_group() as tasks:
            tasks.start_soon(lambda: anyio.to_thread.run_sync(calls_through, path, stop, count))
            while count[0] == 0:  # noqa: ASYNC110 (the client thread has no event loop to signal)
                await anyio.sleep(0.05)
            # Blocking helpers run in threads: this loop carries the client's tunnel meanwhile.
            await anyio.to_thread.run_sync(lab.kill)
            await anyio.to_thread.run_sync(exporter.wait_for, lambda out, err: "lost the controller" in err)
            before = count[0]
            await anyio.sleep(OUTAGE_SECONDS)  # the outage itself: longer than the original's 3 to 5 s
            assert count[0] > before, "the lease's connection stopped working while the controller was away"
            await anyio.to_thread.run_sync(lab.restart)
            stop.set()
        exporter.wait_for(lambda out, err: "registered with the controller" in err.split("lost the controller")[-1])
        # The same lease, the same session: a new connection (a new Dial) sees what the old one did.
    async with Peer.from_config(client) as alice:
        await exporter_status(alice, "board1", LEASE_READY)
        async with tunnel(alice, bare(lease.name), ca_of(client), tmp_path) as path:
            assert await anyio.to_thread.run_sync(power_state, path) is True
        await alice.delete_lease(bare(lease.name))
    assert exporter.process.poll() is None


async def test_exporter_killed_mid_lease_serves_it_again_when_restarted(
    lab: LabController, commands: Commands, tmp_path: Path
) -> None:
    config = lab_exporter_config(lab, "board1", {"board": "x"})
    exporter = start_lab_exporter(commands, config)
    client = lab.create("client", "alice")
    async with Peer.from_config(client) as alice:
        await online(alice, "board1")
        lease = await alice.create_lease("board=x", seconds=120)
        async with tunnel(alice, bare(lease.name), ca_of(client), tmp_path) as path:
            await anyio.to_thread.run_sync(switch_on, path)
            exporter.kill()
            with pytest.raises(Exception) as lost:
                await anyio.to_thread.run_sync(power_state, path)
            assert "exporter" in str(lost.value).lower() or "connect" in str(lost.value).lower(), lost.value
            await anyio.to_thread.run_sync(start_lab_exporter, commands, config)
            await exporter_status(alice, "board1", LEASE_READY)
            assert await anyio.to_thread.run_sync(power_state, path) is False  # served again, by a fresh session
        await alice.delete_lease(bare(lease.name))


async def test_a_token_the_controller_refuses_is_a_clear_error(lab: LabController, commands: Commands) -> None:
    config = lab_exporter_config(lab, "board1", {"board": "x"})
    document = yaml.safe_load(config.read_text())
    document["token"] = document["token"][:-8] + "AAAAAAAA"
    config.write_text(yaml.safe_dump(document))
    result = await anyio.to_thread.run_sync(lambda: commands.run("jmp", "exporter", "run", "--config", str(config)))
    assert result.returncode == 2, result
    last = result.stderr.strip().splitlines()[-1]
    assert "refused this exporter" in last and "check token: in the configuration" in last, result.stderr
    assert "could not unregister" not in result.stderr, result.stderr  # refused: no goodbye to warn about
    assert "Traceback" not in result.stderr
