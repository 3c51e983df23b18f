"""The controller on PostgreSQL: the same state across processes, and active/standby failover."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from jumpstarter.testing import Commands
from jumpstarter_controller.peers import Peer, bare
from testsupport.labcontroller import STEP, LabController, exporter_running, online, ready, until
from testsupport.postgres import PostgresServer

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180)]


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    with PostgresServer.start() as server:
        yield server


async def test_standby_takes_over_within_5_s_of_kill_9(
    commands: Commands, tmp_path: Path, postgres: PostgresServer
) -> None:
    state = tmp_path / "state"
    active = LabController.start(commands, state, "--database", postgres.url)
    board = active.create("exporter", "board1", {"board": "rpi4"})
    alice_config = active.create("client", "alice")
    # The standby shares the state directory (keys, CA) and the database; it waits for the lock.
    standby_process = commands.start(
        "jmp", "controller", "run", "--state-dir", str(state), "--listen", "127.0.0.1:0", "--database", postgres.url
    )
    standby_process.wait_for(lambda out, err: "standing by" in err)
    async with Peer.from_config(alice_config) as alice:
        async with exporter_running(board):
            await online(alice, "board1")
            lease = await alice.create_lease("board=rpi4", seconds=120)
            assert ready(lease)
        active.kill()
        killed = anyio.current_time()
        await anyio.to_thread.run_sync(
            lambda: standby_process.wait_for(lambda out, err: "controller serving on" in out, STEP)
        )
        took = anyio.current_time() - killed
        assert took < 5.0, f"the standby took {took:.1f} s"
        endpoint = standby_process.output()[0].split("controller serving on ")[1].split()[0]
    # Clients and exporters reach the new active controller (in a lab: one address, see the README).
    for path in (board, alice_config):
        path.write_text(path.read_text().replace(active.endpoint, endpoint))
    async with Peer.from_config(alice_config) as alice, exporter_running(board, register=False) as again:
        with anyio.fail_after(STEP):
            while again.current is None:
                await again.changed.wait()
        assert again.current == bare(lease.name)
        assert ready(await until(alice, bare(lease.name), ready))
