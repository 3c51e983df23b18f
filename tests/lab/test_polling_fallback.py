"""Our client against a controller without the long poll on GetLease: it polls every POLL_SECONDS.

A real proxy (TLS both sides, real sockets) forwards every call to our controller but drops
the `jumpstarter-wait-ready` metadata, as a controller that does not offer it would ignore it:
GetLease then answers at once and never echoes the key.
"""

from __future__ import annotations

import base64
import time
from pathlib import Path

import anyio
import pytest

from jumpstarter.client import connect_async
from jumpstarter.client.lab import WAIT_READY_KEY, LabClient, is_ready
from jumpstarter.client.leasing import POLL_SECONDS, LeaseSession
from jumpstarter.config.client import load_client_file
from jumpstarter_controller.state import StateDir
from testsupport.grpc_proxy import metadata_dropping_proxy
from testsupport.lab_exporter import LabBench

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180)]

HELD_SECONDS = 3.0  # how long the waiting client waits: a few poll periods
SLACK = 1.0  # scheduling on a loaded 2-core machine, not a measure


async def test_without_the_long_poll_the_client_polls_and_still_gets_its_lease(bench: LabBench, tmp_path: Path) -> None:
    certificate, key = StateDir.existing(bench.lab.state_dir).issue_server_certificate(["127.0.0.1"], tmp_path / "px")
    config = load_client_file(bench.alice)
    proxied, ca = {WAIT_READY_KEY}, base64.b64decode(config.tls.ca)
    async with (
        metadata_dropping_proxy(bench.lab.endpoint, ca, certificate, key, drop=proxied) as proxy,
        LabClient.open(config) as direct,
    ):
        holder = await direct.create_lease("board=rpi4", 60)
        while not is_ready(holder):
            holder, _ = await direct.wait_lease(holder.name, 20)
        waiting = anyio.Event()
        released_at, polls = 0.0, 0

        async def release() -> None:
            nonlocal released_at, polls
            await waiting.wait()
            await anyio.sleep(HELD_SECONDS)  # the client waits (and polls) this long
            polls = proxy.count("GetLease")
            await direct.delete_lease(holder.name)
            released_at = time.monotonic()

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(release)
            via_proxy = config.model_copy(update={"endpoint": proxy.address})
            async with LeaseSession.open(
                via_proxy, selector="board=rpi4", duration=60, on_waiting=lambda lease: waiting.set()
            ) as session:
                known_at, known_wall = time.monotonic(), time.time()
                async with connect_async(session.socket) as client:
                    await client.power.call_async("on")
                stamp = session.lease.conditions[-1].lastTransitionTime
                granted = stamp.seconds + stamp.nanos / 1e9

    # It polled about once a POLL_SECONDS while it waited, and none of its calls kept the key.
    assert polls >= HELD_SECONDS / POLL_SECONDS - 1, proxy.calls  # a long poll would be one call
    assert not any(WAIT_READY_KEY in keys for _, keys in proxy.calls)
    # It learnt of the grant within a poll period.
    assert 0 <= known_wall - granted < POLL_SECONDS + SLACK, (known_wall, granted)
    assert known_at - released_at < POLL_SECONDS + SLACK
