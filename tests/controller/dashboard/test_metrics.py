"""`/metrics` scraped after real activity on a real `jmp controller run`: leases that wait in line, bytes
through the built-in router, hook runs (as an exporter's statuses report them), exporters by status.

The scrape is parsed with prometheus_client's own text parser, as Prometheus reads it. The exporter here
is a `SimulatedExporter`, not our `jmp exporter run`: the test holds both halves of the router's pair to
count exact bytes, and a real exporter would take its half on Listen; and it reports hook statuses on cue.
(The metrics of real hooks are test_live's timeline test's.)
"""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request

import anyio
import pytest

from jumpstarter.v1 import jumpstarter_pb2
from jumpstarter_controller.peers import Peer, bare
from testsupport.labcontroller import STEP, LabController, exporter_running, online, ready, until
from testsupport.router import router_end

from .conftest import (
    AFTER_LEASE_HOOK,
    AFTER_LEASE_HOOK_FAILED,
    BEFORE_LEASE_HOOK,
    LEASE_READY,
    dashboard_url,
    reported,
    scrape,
    token_of,
    value,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(120)]

WAITED = 0.3  # how long the second lease is kept in line (what queue wait must count), not a synchronisation


async def test_metrics_count_what_happened(lab: LabController) -> None:
    board = lab.create("exporter", "board1", {"board": "rpi4"})
    lab.create("exporter", "board2", {"board": "imx8"})  # never connects: offline
    alice_config, bob_config = lab.create("client", "alice"), lab.create("client", "bob")
    ca = (lab.state_dir / "ca.pem").read_bytes()
    async with (
        exporter_running(board) as simulated,
        Peer.from_config(alice_config) as alice,
        Peer.from_config(bob_config) as bob,
    ):
        await online(alice, "board1")
        first = await alice.create_lease("board=rpi4", seconds=600)
        assert ready(first)
        await reported(alice, "board1", LEASE_READY)

        # Bytes both ways through the built-in router, between the lease's client and its exporter.
        dial = await alice.controller.Dial(jumpstarter_pb2.DialRequest(lease_name=bare(first.name)))
        async with (
            router_end(dial.router_endpoint, ca, dial.router_token) as one,
            router_end(dial.router_endpoint, ca, dial.router_token) as two,
        ):
            await one.send(b"a" * 1000)
            await one.close_sending()
            assert await two.receive_all() == b"a" * 1000
            await two.send(b"b" * 500)
            await two.close_sending()
            assert await one.receive_all() == b"b" * 500

        # A hook run that succeeds, one that fails.
        await simulated.report(BEFORE_LEASE_HOOK, "Running beforeLease hook")
        await simulated.report(LEASE_READY, "hook output")
        await simulated.report(AFTER_LEASE_HOOK, "Running afterLease hook")
        await simulated.report(AFTER_LEASE_HOOK_FAILED, "exit status 1")
        await simulated.report(LEASE_READY, "Ready for commands")

        # A second lease waits in line for the board.
        second = await bob.create_lease("board=rpi4", seconds=600)
        assert not ready(second)
        await anyio.sleep(WAITED)
        during = await scrape(lab, token_of(alice_config))
        await alice.delete_lease(bare(first.name))
        await until(bob, bare(second.name), ready)
        await reported(bob, "board1", LEASE_READY)
        after = await scrape(lab, token_of(bob_config))
        await bob.delete_lease(bare(second.name))

    assert value(during, "jumpstarter_leases", state="active") == 1
    assert value(during, "jumpstarter_leases", state="pending") == 1
    assert value(after, "jumpstarter_leases", state="active") == 1
    assert value(after, "jumpstarter_leases", state="ended") == 1
    assert value(after, "jumpstarter_exporters", status="lease-ready") == 1
    assert value(after, "jumpstarter_exporters", status="offline") == 1
    assert value(after, "jumpstarter_exporters", status="available") == 0

    assert value(after, "jumpstarter_lease_queue_wait_seconds_count") == 2
    assert value(after, "jumpstarter_lease_queue_wait_seconds_sum") >= WAITED
    assert value(after, "jumpstarter_lease_queue_wait_seconds_bucket", le="0.01") == 1  # the first did not wait
    assert value(after, "jumpstarter_lease_request_to_ready_seconds_count") == 2

    relayed = [value(after, "jumpstarter_router_bytes_total", direction=d) for d in ("from_first", "from_second")]
    assert sum(relayed) >= 1500 and min(relayed) >= 500 and max(relayed) >= 1000, relayed
    assert value(after, "jumpstarter_router_pairs_total") == 1

    assert value(after, "jumpstarter_hook_duration_seconds_count", hook="before_lease") == 1
    assert value(after, "jumpstarter_hook_duration_seconds_count", hook="after_lease") == 1
    assert value(after, "jumpstarter_hook_failures_total", hook="after_lease") == 1
    assert ("jumpstarter_hook_failures_total", (("hook", "before_lease"),)) not in after


async def test_metrics_need_a_token(lab: LabController) -> None:
    context = ssl.create_default_context(cafile=str(lab.state_dir / "ca.pem"))

    def status(headers: dict[str, str]) -> tuple[int, str]:
        request = urllib.request.Request(dashboard_url(lab) + "metrics", headers=headers)
        try:
            with urllib.request.urlopen(request, context=context, timeout=STEP) as answer:
                return int(answer.status), ""
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    code, text = await anyio.to_thread.run_sync(status, {})
    assert code == 401 and "Authorization: Bearer" in text
    assert (await anyio.to_thread.run_sync(status, {"Authorization": "Bearer nonsense"}))[0] == 401
