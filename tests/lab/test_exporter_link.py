"""Our `jmp exporter run` in a lab: real `jmp controller run` and exporter processes.

Clients are Python peers (`Peer`: ClientService) with the client's own tunnel through the
router, as a lease shell has; the original 0.9.0 client is in test_original_client_lab.py,
the controller's outage and broken networks in test_faults.py.
"""

from __future__ import annotations

import logging
import os
import re
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from jumpstarter.testing import Commands, Process
from jumpstarter.v1 import common_pb2
from jumpstarter_controller.peers import Peer, bare
from testsupport.lab_exporter import (
    exporter_status,
    lab_exporter_config,
    power_state,
    start_lab_exporter,
    statuses,
    switch_on,
    tunnel,
)
from testsupport.labcontroller import STEP, LabController, conditions, online, ready, until

AVAILABLE = common_pb2.EXPORTER_STATUS_AVAILABLE
LEASE_READY = common_pb2.EXPORTER_STATUS_LEASE_READY
# A client whose exporter was killed gets an error within this (issue 14: "within a few seconds").
LOST_BOUND = 5.0

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


@dataclass
class Joined:
    """Our exporter `board1` (board=x) registered with the lab, and client `alice` connected to the controller."""

    config: Path
    exporter: Process
    client: Path
    alice: Peer


Join = Callable[..., Awaitable[Joined]]


@pytest.fixture
async def join(lab: LabController, commands: Commands) -> AsyncIterator[Join]:
    """`await join(**extra)`: the exporter (its config's `extra` top-level keys: hooks...) and alice, online."""
    async with AsyncExitStack() as stack:

        async def joined(**extra: Any) -> Joined:
            config = lab_exporter_config(lab, "board1", {"board": "x"}, **extra)
            exporter = start_lab_exporter(commands, config)
            client = lab.create("client", "alice")
            alice = await stack.enter_async_context(Peer.from_config(client))
            await online(alice, "board1")
            return Joined(config, exporter, client, alice)

        yield joined


async def test_leases_through_the_router_each_with_a_fresh_session(lab: LabController, join: Join) -> None:
    board = await join()
    alice = board.alice
    first = await alice.create_lease("board=x", seconds=60)
    assert ready(first), conditions(first)
    async with tunnel(board.client, bare(first.name)) as path:
        assert await anyio.to_thread.run_sync(power_state, path) is False
        await anyio.to_thread.run_sync(switch_on, path)
        assert await anyio.to_thread.run_sync(power_state, path) is True  # a second connection, same session
    await alice.delete_lease(bare(first.name))

    second = await until(alice, bare((await alice.create_lease("board=x", seconds=60)).name), ready)
    async with tunnel(board.client, bare(second.name)) as path:
        assert await anyio.to_thread.run_sync(power_state, path) is False  # lease 1's state is gone
    await alice.delete_lease(bare(second.name))
    assert board.exporter.process.poll() is None
    assert statuses(lab, "board1")[:5] == ["Available", "LeaseReady", "Available", "LeaseReady", "Available"]


def hook(kind: str, script: str, on_failure: str, timeout: int = 20) -> dict[str, object]:
    return {"hooks": {kind: {"script": script, "onFailure": on_failure, "timeout": timeout}}}


async def test_hooks_statuses_and_their_output_reach_the_controller(lab: LabController, join: Join) -> None:
    hooks = {
        "beforeLease": {"script": "echo preparing for $CLIENT_NAME; j power on", "timeout": 30},
        "afterLease": {"script": "echo cleaning up; j power off", "timeout": 30},
    }
    board = await join(hooks=hooks)
    lease = await board.alice.create_lease("board=x", seconds=60)
    await exporter_status(board.alice, "board1", LEASE_READY)  # as a lease shell waits for it
    async with tunnel(board.client, bare(lease.name)) as path:
        assert await anyio.to_thread.run_sync(power_state, path) is True  # the beforeLease hook's doing
    await board.alice.delete_lease(bare(lease.name))
    await exporter_status(board.alice, "board1", AVAILABLE)  # after its afterLease hook
    assert statuses(lab, "board1") == ["Available", "BeforeLeaseHook", "LeaseReady", "AfterLeaseHook", "Available"]
    events = lab.admin("get", "events").stdout
    assert "beforeLease hook output:" in events and "preparing for alice" in events
    assert "afterLease hook output:" in events and "cleaning up" in events


async def test_sigterm_says_offline_and_unregisters(lab: LabController, join: Join) -> None:
    board = await join()
    os.kill(board.exporter.pid, signal.SIGTERM)
    result = board.exporter.finish(30)
    assert result.returncode == 0, result
    assert "unregistered from the controller" in result.stderr
    assert statuses(lab, "board1")[-1] == "Offline"
    assert "exporter unregistered" in lab.admin("get", "events").stdout
    listed = lab.admin("get", "exporters").stdout
    assert "board1" in listed


async def test_sighup_finishes_the_lease_then_stops(lab: LabController, join: Join) -> None:
    board = await join()
    alice, exporter = board.alice, board.exporter
    lease = await alice.create_lease("board=x", seconds=60)
    async with tunnel(board.client, bare(lease.name)) as path:
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


def _released(lease: Any) -> bool:
    return bool(lease.conditions[-1].reason == "Released")


@pytest.mark.parametrize("on_failure", ["warn", "endLease", "exit"])
async def test_a_failing_before_lease_hook_does_what_on_failure_says(
    lab: LabController, join: Join, on_failure: str
) -> None:
    board = await join(**hook("beforeLease", "echo it broke; exit 5", on_failure))
    lease = await board.alice.create_lease("board=x", seconds=60)
    name = bare(lease.name)
    if on_failure == "warn":
        async with tunnel(board.client, name) as path:
            assert await anyio.to_thread.run_sync(power_state, path) is False
        assert statuses(lab, "board1") == ["Available", "BeforeLeaseHook", "LeaseReady"]
        return
    released = await until(board.alice, name, _released)
    # Ready=False/Released stays the last condition (the original's clients read it); one before it says why.
    assert conditions(released)[-2:] == [("HookFailed", "True", "BeforeLeaseHook"), ("Ready", "False", "Released")]
    assert released.conditions[-2].message == "beforeLease hook exited with code 5"
    events = lab.admin("get", "events").stdout
    assert "BeforeLeaseHookFailed: beforeLease hook exited with code 5" in events and "it broke" in events
    await _stops_if_exit(lab, board.exporter, on_failure)


@pytest.mark.parametrize("on_failure", ["warn", "endLease", "exit"])
async def test_a_failing_after_lease_hook_does_what_on_failure_says(
    lab: LabController, join: Join, on_failure: str
) -> None:
    board = await join(**hook("afterLease", "echo cleanup broke; exit 6", on_failure))
    lease = await board.alice.create_lease("board=x", seconds=60)
    await exporter_status(board.alice, "board1", LEASE_READY)
    await board.alice.delete_lease(bare(lease.name))
    events = ""
    with anyio.fail_after(STEP):
        while "afterLease hook exited with code 6" not in events:
            await anyio.sleep(0.1)
            events = lab.admin("get", "events").stdout
    assert "cleanup broke" in events, events
    # warn: a warning in the AVAILABLE status; the others go through AFTER_LEASE_HOOK_FAILED.
    assert ("AfterLeaseHookFailed" in statuses(lab, "board1")) == (on_failure != "warn"), events
    if on_failure == "exit":
        await _stops_if_exit(lab, board.exporter, on_failure)
        return
    # warn and endLease: the lease has ended anyway, and the exporter takes the next one.
    await exporter_status(board.alice, "board1", AVAILABLE)
    again = await until(board.alice, bare((await board.alice.create_lease("board=x", seconds=60)).name), ready)
    assert board.exporter.process.poll() is None
    await board.alice.delete_lease(bare(again.name))


async def _stops_if_exit(lab: LabController, exporter: Process, on_failure: str) -> None:
    """With ``exit`` the exporter stops (status 3, unregistered); otherwise it runs on."""
    if on_failure != "exit":
        assert exporter.process.poll() is None
        return
    result = await anyio.to_thread.run_sync(exporter.finish, 30)
    assert result.returncode == 3, result
    assert "its onFailure is exit: the exporter stops" in result.stderr
    assert "exporter unregistered" in lab.admin("get", "events").stdout


@pytest.mark.parametrize("kind", ["beforeLease", "afterLease"])
async def test_a_hook_that_hangs_is_stopped_at_its_timeout(lab: LabController, join: Join, kind: str) -> None:
    board = await join(**hook(kind, "echo waiting for the board; sleep 600", "endLease", timeout=1))
    lease = await board.alice.create_lease("board=x", seconds=60)
    if kind == "afterLease":
        await exporter_status(board.alice, "board1", LEASE_READY)
        await board.alice.delete_lease(bare(lease.name))
    await until(board.alice, bare(lease.name), _released)
    if kind == "afterLease":
        await exporter_status(board.alice, "board1", AVAILABLE)  # the hook was stopped: the board is free again
    events = lab.admin("get", "events").stdout
    assert f"{kind} hook ran past its timeout of 1 s" in events and "waiting for the board" in events
    assert board.exporter.process.poll() is None


async def test_exporter_killed_mid_lease_is_a_clear_error_and_serves_it_again_when_restarted(
    commands: Commands, join: Join, caplog: pytest.LogCaptureFixture
) -> None:
    board = await join()
    lease = await board.alice.create_lease("board=x", seconds=120)
    caplog.set_level(logging.DEBUG, "jumpstarter.client.tunnel")
    async with tunnel(board.client, bare(lease.name)) as path:
        await anyio.to_thread.run_sync(switch_on, path)
        board.exporter.kill()
        for _ in range(3):  # a client that keeps trying: each call dials again
            with anyio.fail_after(LOST_BOUND), pytest.raises(Exception) as lost:
                await anyio.to_thread.run_sync(power_state, path)
            assert "exporter" in str(lost.value).lower() or "connect" in str(lost.value).lower(), lost.value
        await anyio.to_thread.run_sync(start_lab_exporter, commands, board.config)
        await exporter_status(board.alice, "board1", LEASE_READY)
        assert await anyio.to_thread.run_sync(power_state, path) is False  # served again, by a fresh session
    await board.alice.delete_lease(bare(lease.name))
    # The outage is told once, and its end once; every failed dial is in the DEBUG log.
    said = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "jumpstarter.client.tunnel"]
    told = [(level, message) for level, message in said if level != "DEBUG"]
    assert [level for level, _ in told] == ["WARNING", "INFO"], said
    assert told[0][1].startswith(f"cannot connect to the exporter of lease {bare(lease.name)}: "), told
    assert re.fullmatch(rf"the exporter of lease {bare(lease.name)} can be reached again \(after \w+\)", told[1][1])
    assert [message for level, message in said if level == "DEBUG" and "cannot connect" in message], said


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


async def test_tls_insecure_in_the_config_is_refused_with_a_clear_error(lab: LabController, commands: Commands) -> None:
    config = lab_exporter_config(lab, "board1", {"board": "x"})
    document = yaml.safe_load(config.read_text())
    document["tls"]["insecure"] = True
    config.write_text(yaml.safe_dump(document))
    result = await anyio.to_thread.run_sync(lambda: commands.run("jmp", "exporter", "run", "--config", str(config)))
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "tls.insecure is not supported" in last and "give the controller's CA in tls.ca" in last, result.stderr
    assert statuses(lab, "board1") == []  # it never reached the controller
