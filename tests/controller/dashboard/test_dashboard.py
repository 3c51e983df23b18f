"""The dashboard in Debian's headless Chromium, against a real `jmp controller run` with real exporters.

The exporters are our `jmp exporter run` processes (a MockPower each), their hooks real scripts; the
clients create leases with `jmp create lease`, or over ClientService as the original's client does.
Selenium's calls block, so they run in a worker thread: the event loop keeps serving the test's peers.
With JMP_WRITE_SCREENSHOTS=1, screenshots of each page go to docs/lab/ (shown by docs/lab/dashboard.md).
"""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from typing import Any

import anyio
import pytest

from jumpstarter_controller.peers import Peer, bare
from testsupport.labcontroller import JMP, STEP, LabController, online, ready, until

from .conftest import (
    AVAILABLE,
    LEASE_READY,
    click,
    dashboard_url,
    exporter,
    in_browser,
    live,
    login_admin,
    login_token,
    reported,
    shot,
    text_of,
    token_of,
    wait,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180)]

SCRIPT = "<script>window.pwned=1</script>"


async def test_admin_watches_a_lease_appear_and_ends_it_and_the_cli_gets_the_board(
    lab: LabController, browser: Any
) -> None:
    url = dashboard_url(lab)
    refused = lab.admin("create", "exporter", "x", "--label", f"note={SCRIPT}", "--out", str(lab.state_dir / "x"))
    assert refused.returncode == 1 and "invalid value" in refused.stderr  # labels cannot hold markup at all
    # What its beforeLease hook prints goes to the timeline: as text, never run.
    exporter(lab, "board1", {"board": "rpi4"}, before=f"echo 'hook says {SCRIPT}'")
    exporter(lab, "board2", {"board": "imx8"})
    alice_config, bob_config = lab.create("client", "alice"), lab.create("client", "bob")
    async with Peer.from_config(alice_config) as alice, Peer.from_config(bob_config) as bob:
        await online(alice, "board1")
        await online(alice, "board2")
        link = await in_browser(lambda: login_admin(browser, lab))
        await in_browser(lambda: live(browser))
        row = "tr[data-key='default/board1']"
        text = await in_browser(lambda: text_of(browser, row))
        assert "available" in text and "board=rpi4" in text
        assert "default/board2" in await in_browser(lambda: text_of(browser, "#exporters"))

        # The one-time link is used up.
        await in_browser(lambda: browser.delete_all_cookies())
        await in_browser(lambda: (browser.get(link), click(browser, "#login")))
        # The form posts and the answer is a new page: wait for it rather than read the old one.
        assert "used already" in await in_browser(lambda: wait(browser, lambda b: text_of(b, "#error")))
        await in_browser(lambda: login_admin(browser, lab))
        await in_browser(lambda: live(browser))

        # A lease made with `jmp create lease` shows on the open page without a reload.
        def create_lease(config: Any) -> str:
            argv = ["create", "lease", "-l", "board=rpi4", "--duration", "10m", "-o", "name", "--client-config"]
            created = lab.commands.run(*JMP, *argv, str(config))
            assert created.returncode == 0, created
            return created.stdout.strip()

        started = time.monotonic()
        lease = await anyio.to_thread.run_sync(create_lease, alice_config)
        assert ready(await alice.get_lease(lease))
        await in_browser(lambda: wait(browser, lambda b: text_of(b, row + " .client") == "alice"))
        print(f"lease to screen: {(time.monotonic() - started) * 1000:.0f} ms")
        shown = await in_browser(lambda: browser.execute_script(
            "return Number(document.body.dataset.shownAt) - Number(document.body.dataset.changedAt)"))  # fmt: skip
        assert 0 <= shown < 1500, shown
        await in_browser(lambda: shot(browser, "exporters"))

        # A second lease waits for it: the exporters page counts it, the leases page shows its place.
        waiting = await anyio.to_thread.run_sync(create_lease, bob_config)
        await in_browser(lambda: wait(browser, lambda b: text_of(b, row + " .waiting") == "1"))
        await in_browser(lambda: browser.get(url + "leases"))
        pending = f"#leases-pending tr[data-key='default/{waiting}']"
        assert "1st in line" in await in_browser(lambda: text_of(browser, pending))
        await in_browser(lambda: shot(browser, "leases"))

        # Ending alice's lease from the page hands the board to bob's waiting lease.
        await in_browser(lambda: click(browser, f"#leases-active tr[data-key='default/{lease}'] button.end"))
        await until(bob, waiting, ready)
        ended = await alice.get_lease(lease)
        assert ended.conditions[-1].reason == "Released"
        active = f"#leases-active tr[data-key='default/{waiting}']"
        await in_browser(lambda: wait(browser, lambda b: "bob" in text_of(b, active)))

        # The filter takes the CLI's selector syntax; a bad one says what is wrong.
        await in_browser(lambda: browser.get(url + "leases?selector=board%3Dimx8"))
        assert "default/" not in await in_browser(lambda: text_of(browser, "#leases-active"))
        await in_browser(lambda: browser.get(url + "leases?selector=board%3D%3D%3D"))
        assert "does not parse" in await in_browser(lambda: text_of(browser, ".error"))

        # The timeline: its leases, its status changes (what the exporter reports, its hook's output
        # among it, shown as text, never run), the events (the dashboard's action among them).
        await in_browser(lambda: browser.get(url + "exporters/default/board1"))
        await in_browser(lambda: live(browser))
        await in_browser(lambda: wait(browser, lambda b: f"hook says {SCRIPT}" in text_of(b, "#history")))
        assert await in_browser(lambda: browser.execute_script("return window.pwned === undefined"))
        timeline = await in_browser(lambda: text_of(browser, "main"))
        assert lease in timeline and "lease-ready" in timeline
        assert "admin:dashboard" in timeline and "ended from the dashboard" in timeline
        # (The timeline's screenshot, with a hook's output, is test_live's.)
        await in_browser(lambda: browser.get(url + "clients"))
        assert "default/alice" in await in_browser(lambda: text_of(browser, "#clients"))
        await in_browser(lambda: shot(browser, "clients"))
        await bob.delete_lease(waiting)

    events = lab.admin("get", "events")
    assert "ended from the dashboard by admin:dashboard" in events.stdout, events


async def test_a_drained_exporter_finishes_its_lease_and_takes_no_new_one(lab: LabController, browser: Any) -> None:
    url = dashboard_url(lab)
    exporter(lab, "board1", {"board": "rpi4"})
    alice_config = lab.create("client", "alice")
    async with Peer.from_config(alice_config) as alice:
        await online(alice, "board1")
        held = await alice.create_lease("board=rpi4", seconds=600)
        await in_browser(lambda: login_admin(browser, lab))
        await in_browser(lambda: browser.get(url + "exporters/default/board1"))
        await in_browser(lambda: click(browser, "#toggle"))
        await in_browser(lambda: wait(browser, lambda b: "drained" in text_of(b, "h1")))
        assert ready(await alice.get_lease(bare(held.name)))  # it keeps its lease
        await alice.delete_lease(bare(held.name))
        # The only matching board is drained: the controller refuses the lease as unsatisfiable (no enabled
        # exporter matches) rather than handing it the board.
        later = await alice.create_lease("board=rpi4", seconds=600)
        assert not ready(later)
        with anyio.move_on_after(1.0):  # a bound: the scheduler assigns within the call, so 1 s is generous
            await until(alice, bare(later.name), ready)
            pytest.fail("a drained exporter took a new lease")
        assert any(c.type == "Unsatisfiable" for c in (await alice.get_lease(bare(later.name))).conditions)
        await in_browser(lambda: click(browser, "#toggle"))  # enabled again: it takes leases
        await in_browser(lambda: wait(browser, lambda b: "drained" not in text_of(b, "h1")))
        again = await alice.create_lease("board=rpi4", seconds=600)
        await until(alice, bare(again.name), ready)
        await alice.delete_lease(bare(again.name))
    events = lab.admin("get", "events").stdout
    assert "exporter disabled" in events and "exporter enabled" in events  # as jmp admin disable|enable


async def test_a_client_sees_its_namespace_only_and_ends_only_its_leases(lab: LabController, browser: Any) -> None:
    url = dashboard_url(lab)
    exporter(lab, "board1", {"board": "rpi4"})
    lab.create("exporter", "secret-board", {"board": "rpi4"}, namespace="other")
    alice_config = lab.create("client", "alice")
    lab.create("client", "eve", namespace="other")
    async with Peer.from_config(alice_config) as alice:
        await online(alice, "board1")
        await in_browser(lambda: login_token(browser, url, token_of(alice_config)))
        await in_browser(lambda: wait(browser, lambda b: b.current_url.endswith("/exporters")))
        listing = await in_browser(lambda: text_of(browser, "#exporters"))
        assert "default/board1" in listing and "secret-board" not in listing
        await in_browser(lambda: browser.get(url + "exporters/other/secret-board"))
        assert "cannot see" in await in_browser(lambda: text_of(browser, "main"))
        await in_browser(lambda: browser.get(url + "clients"))
        assert "admin only" in await in_browser(lambda: text_of(browser, "main"))
        lease = await alice.create_lease("board=rpi4", seconds=600)
        await in_browser(lambda: browser.get(url + "leases"))
        await in_browser(lambda: click(browser, f"tr[data-key='default/{bare(lease.name)}'] button.end"))
        await until(alice, bare(lease.name), lambda got: got.conditions[-1].reason == "Released")
        await reported(alice, "board1", AVAILABLE)  # the exporter is done with it

        # Without the page's token, or from another origin, an action is refused.
        cookie = await in_browser(lambda: browser.get_cookie("jmp_dashboard"))
        assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        second = await alice.create_lease("board=rpi4", seconds=600)
        await reported(alice, "board1", LEASE_READY)  # the exporter took it up (what /metrics counts below)
        target = f"{url}leases/default/{bare(second.name)}/end"
        context = ssl.create_default_context(cafile=str(lab.state_dir / "ca.pem"))

        def post(body: bytes, origin: str) -> int:
            request = urllib.request.Request(target, data=body, method="POST", headers={
                "Cookie": f"jmp_dashboard={cookie['value']}", "Origin": origin,
                "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
            try:
                with urllib.request.urlopen(request, context=context, timeout=STEP) as answer:
                    return int(answer.status)
            except urllib.error.HTTPError as error:
                return error.code

        assert await anyio.to_thread.run_sync(post, b"", url.rstrip("/")) == 403
        assert await anyio.to_thread.run_sync(post, b"csrf=guess", url.rstrip("/")) == 403
        assert ready(await alice.get_lease(bare(second.name)))

        # /metrics takes a bearer token and counts what the page shows.
        def metrics(token: str) -> str:
            request = urllib.request.Request(url + "metrics", headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(request, context=context, timeout=STEP) as answer:
                return str(answer.read().decode())

        scraped = await anyio.to_thread.run_sync(metrics, token_of(alice_config))
        assert 'jumpstarter_leases{state="active"} 1.0' in scraped
        assert 'jumpstarter_exporters{status="lease-ready"} 1.0' in scraped
        assert "jumpstarter_lease_request_to_ready_seconds_count 2.0" in scraped
        await alice.delete_lease(bare(second.name))
    json.dumps(cookie)  # the cookie was a JSON-able dict (Selenium's shape)
