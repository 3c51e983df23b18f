"""The test peers (`Peer`, `exporter_running`) under cancellation, against a real controller process.

gRPC answers the cancellation of a task awaiting a unary call with a CancelledError of its own;
a cancel scope around a call must still end as anyio's (a `move_on_after` ends its block), and a
simulated exporter that stops must say so, by name, rather than cancel the test's body.
"""

from __future__ import annotations

import time

import anyio
import pytest

from jumpstarter_controller.peers import Peer, bare
from testsupport.labcontroller import STEP, ExporterStopped, LabController, exporter_running, online

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]


async def test_a_cancel_scope_around_a_call_ends_its_block_only(lab: LabController) -> None:
    alice_config = lab.create("client", "alice")
    async with Peer.from_config(alice_config) as alice:
        lease = bare((await alice.create_lease("board=rpi4", seconds=600)).name)
        # A call's length on this machine, to spread the deadlines over (a fixed spread missed the calls of a
        # faster machine, which ended first).
        started = time.perf_counter()
        for _ in range(5):
            await alice.get_lease(lease)
        call = (time.perf_counter() - started) / 5
        cut_short = 0
        for attempt in range(60):
            # Deadlines from "already past" to about a call's length: most land inside the call.
            with anyio.move_on_after((attempt % 20) / 20 * call) as scope:
                await (alice.get_lease(lease) if attempt % 2 else alice.create_lease("board=rpi4", seconds=600))
            cut_short += scope.cancelled_caught
        assert cut_short >= 20, cut_short  # (a deadline already past always lands inside the call)
        # The peer is still fine: the cancelled calls were cancelled, nothing else.
        assert bare((await alice.get_lease(lease)).name) == lease


async def test_an_exporter_that_stops_serving_is_named(lab: LabController) -> None:
    board = lab.create("exporter", "board1", {"board": "rpi4"})
    alice_config = lab.create("client", "alice")
    async with Peer.from_config(alice_config) as alice:
        with pytest.raises(
            ExporterStopped, match=r"simulated exporter default/board1 stopped serving: gRPC cancelled one of its calls"
        ):
            async with exporter_running(board) as simulated:
                await online(alice, "board1")
                # Its channel closed under it: gRPC ends its Status stream with a CancelledError of its own.
                await simulated.peer.channel.close()
                with anyio.fail_after(STEP):
                    await anyio.sleep_forever()
        board2 = lab.create("exporter", "board2", {"board": "rpi4"})
        deleted_why = "the controller ended a call with UNKNOWN: this exporter was deleted"
        with pytest.raises(ExporterStopped, match=f"default/board2 stopped serving: {deleted_why}"):
            async with exporter_running(board2):
                await online(alice, "board2")
                deleted = lab.admin("delete", "exporter", "board2")  # the controller ends its Status stream
                assert deleted.returncode == 0, deleted
                with anyio.fail_after(STEP):
                    await anyio.sleep_forever()
