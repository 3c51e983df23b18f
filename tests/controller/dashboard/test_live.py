"""The dashboard's live view in Debian's headless Chromium: exporter and lease rows that change in place, a
cut leases table that fetches itself again, an exporter going offline, hook output on the timeline, a
session that expires.

Against a real `jmp controller run` with our real exporters (`jmp exporter run` processes, their
hooks real scripts); Selenium's blocking calls run in a worker thread (`in_browser`).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from jumpstarter.testing import Commands
from jumpstarter_controller.dashboard._app import LEASE_ROWS
from jumpstarter_controller.peers import Peer, bare
from testsupport.labcontroller import JMP, STEP, LabController, online, ready

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
    scrape,
    shot,
    text_of,
    token_of,
    value,
    wait,
)

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(180)]

LIVE_TARGET_MS = 500  # issue 15: a change shows on an open page within 500 ms

# A marker on the page's window and its tables: a reload loses both, a fetch of the page's main part (the
# fallback when a row diff cannot be applied) the tables' only.
MARK = "window.kept = 1; for (const t of document.querySelectorAll('table[data-count]')) t.dataset.kept = '1'"
WINDOW_KEPT = "return window.kept === 1"
TABLES_KEPT = "return Array.from(document.querySelectorAll('table[data-count]')).every(t => t.dataset.kept === '1')"
KEPT = "return window.kept === 1 && " + TABLES_KEPT.removeprefix("return ")
DELAY = "return Number(document.body.dataset.shownAt) - Number(document.body.dataset.changedAt)"


async def kept(browser: Any) -> None:
    """The page kept its tables since MARK (it applied row diffs); if not, say why it fetched them again."""
    if not await in_browser(lambda: browser.execute_script(KEPT)):
        why = await in_browser(lambda: browser.execute_script("return document.body.dataset.fetched"))
        raise AssertionError(f"the page fetched its main part again ({why})")


def configured_lab(
    commands: Commands, tmp_path: Path, config: str, browser_factory: Callable[[LabController], Any]
) -> tuple[LabController, Any, str]:
    """A controller of its own, started with `config` (YAML), a browser for it and its dashboard's address."""
    path = tmp_path / "controller.yaml"
    path.write_text(config)
    lab = LabController.start(commands, tmp_path / "state", "--config", str(path))
    return lab, browser_factory(lab), dashboard_url(lab)


def open_live(browser: Any, lab: LabController, page: str) -> None:
    """Log in as the admin, open `page` and wait for its live updates."""
    login_admin(browser, lab)
    browser.get(page)
    live(browser)


def row_keys(browser: Any, table: str = "#exporters") -> list[str]:
    """The keys of the rows `table` shows, in the page's order."""
    keys = browser.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0] + ' tr[data-key]')).map(r => r.dataset.key)", table
    )
    return [str(key) for key in keys]


async def test_rows_change_in_place_and_an_exporter_going_offline_shows_live(lab: LabController, browser: Any) -> None:
    url = dashboard_url(lab)
    board = exporter(lab, "board1", {"board": "rpi4"})
    lab.create("exporter", "board3", {"board": "imx8"})
    alice_config = lab.create("client", "alice")
    async with Peer.from_config(alice_config) as alice:
        await online(alice, "board1")
        await in_browser(lambda: open_live(browser, lab, url + "exporters"))
        row = "tr[data-key='default/board1']"
        await in_browser(lambda: wait(browser, lambda b: "available" in text_of(b, row)))
        await in_browser(lambda: browser.execute_script(MARK))
        # Everything the page loaded came from the dashboard itself (a lab may have no internet).
        loaded = await in_browser(lambda: browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)"))  # fmt: skip
        assert loaded and all(name.startswith(url) for name in loaded), loaded

        # A new exporter: its row goes in its place, the count follows, the rest of the table stays.
        lab.create("exporter", "board2", {"board": "rpi4"})
        await in_browser(lambda: wait(browser, lambda b: "default/board2" in row_keys(b)))
        assert await in_browser(lambda: row_keys(browser)) == ["default/board1", "default/board2",
                                                               "default/board3"]  # fmt: skip
        assert await in_browser(lambda: text_of(browser, "#count-exporters")) == "3"
        await kept(browser)

        # A lease: the row it touches changes in place.
        lease = await alice.create_lease("board=rpi4", seconds=600)
        assert ready(lease)
        await in_browser(lambda: wait(browser, lambda b: text_of(b, row + " .client") == "alice"))
        await kept(browser)
        await alice.delete_lease(bare(lease.name))
        await in_browser(lambda: wait(browser, lambda b: text_of(b, row + " .client") == ""))

        # Our exporter stops (SIGTERM: it says it goes offline and leaves): the row turns offline on the
        # open page, without a reload, within the live target.
        os.kill(board.pid, signal.SIGTERM)
        await in_browser(lambda: wait(browser, lambda b: "offline" in text_of(b, row)))
        stopped = await anyio.to_thread.run_sync(board.finish, STEP)
        assert stopped.returncode == 0, stopped
        delay = await in_browser(lambda: browser.execute_script(DELAY))
        print(f"offline to screen: {delay} ms")
        assert 0 <= delay <= LIVE_TARGET_MS, delay
        await kept(browser)


def counts(browser: Any) -> list[str]:
    """The leases page's counts: active, waiting, ended."""
    return [text_of(browser, f"#count-leases-{state}") for state in ("active", "pending", "ended")]


async def test_lease_rows_come_change_and_go_in_place_in_their_order(lab: LabController, browser: Any) -> None:
    url = dashboard_url(lab)
    exporter(lab, "board1", {"board": "rpi4"})
    lab.create("exporter", "board3", {"board": "imx8"})  # never runs: a lease for it waits (and is filtered out)
    alice_config = lab.create("client", "alice")
    async with Peer.from_config(alice_config) as alice:
        await online(alice, "board1")
        # A filtered page: its change feed diffs the rows the filter shows.
        await in_browser(lambda: open_live(browser, lab, url + "leases?selector=board%3Drpi4"))
        await in_browser(lambda: browser.execute_script(MARK))
        assert await in_browser(lambda: counts(browser)) == ["0", "0", "0"]
        assert (await in_browser(lambda: text_of(browser, "#leases-active"))).endswith("None.")

        def keys(table: str) -> list[str]:
            return row_keys(browser, f"#leases-{table}")

        async def shows(table: str, *names: str) -> None:
            await in_browser(lambda: wait(browser, lambda b: keys(table) == [f"default/{n}" for n in names]))

        # Granted: the row goes into the active table, with its exporter.
        first = bare((await alice.create_lease("board=rpi4", seconds=600)).name)
        await shows("active", first)
        assert "board1" in await in_browser(lambda: text_of(browser, f"tr[data-key='default/{first}']"))
        delay = await in_browser(lambda: browser.execute_script(DELAY))
        print(f"lease to screen: {delay} ms")
        assert 0 <= delay <= LIVE_TARGET_MS, delay
        # Waiting: newest first, each with its place in line; the lease for the other board stays off the page.
        second = bare((await alice.create_lease("board=rpi4", seconds=600)).name)
        other = bare((await alice.create_lease("board=imx8", seconds=600)).name)
        third = bare((await alice.create_lease("board=rpi4", seconds=600)).name)
        await shows("pending", third, second)
        assert "2nd in line" in await in_browser(lambda: text_of(browser, f"tr[data-key='default/{third}']"))
        assert await in_browser(lambda: counts(browser)) == ["1", "2", "0"]
        await kept(browser)

        # Ended: the row moves to the ended table; the board goes to the next in line, whose row moves up.
        # A keyboard user on a row that changes stays on its control (the End button of the new row).
        end_third = f"tr[data-key='default/{third}'] button"
        await in_browser(lambda: browser.execute_script(f"document.querySelector({end_third!r}).focus()"))
        await alice.delete_lease(first)
        await shows("active", second)
        await shows("pending", third)
        await shows("ended", first)
        assert "1st in line" in await in_browser(lambda: text_of(browser, f"tr[data-key='default/{third}']"))
        focused = f"return document.activeElement === document.querySelector({end_third!r})"
        assert await in_browser(lambda: browser.execute_script(focused))
        assert "Released" in await in_browser(lambda: text_of(browser, f"tr[data-key='default/{first}']"))
        assert await in_browser(lambda: counts(browser)) == ["1", "1", "1"]
        for name in (second, third, other):
            await alice.delete_lease(name)
        await shows("ended", third, second, first)
        assert await in_browser(lambda: keys("active") + keys("pending")) == []
        assert await in_browser(lambda: counts(browser)) == ["0", "0", "3"]
        assert (await in_browser(lambda: text_of(browser, "#leases-pending"))).endswith("None.")
        await kept(browser)  # no reload, no table fetched again


async def test_a_cut_leases_table_fetches_itself_again_when_a_row_must_move_in(
    commands: Commands, tmp_path: Path, browser_factory: Callable[[LabController], Any]
) -> None:
    lab, browser, url = configured_lab(commands, tmp_path, "limits:\n  leases_per_client: 300\n", browser_factory)
    lab.create("exporter", "board1", {"board": "rpi4"})  # never runs: every lease waits
    alice_config = lab.create("client", "alice")
    async with Peer.from_config(alice_config) as alice:
        created = [bare((await alice.create_lease("board=rpi4", seconds=600)).name) for _ in range(LEASE_ROWS + 2)]
        newest = [f"default/{name}" for name in reversed(created)]
        await in_browser(lambda: open_live(browser, lab, url + "leases"))
        await in_browser(lambda: browser.execute_script(MARK))
        assert await in_browser(lambda: row_keys(browser, "#leases-pending")) == newest[:LEASE_ROWS]
        assert await in_browser(lambda: counts(browser)) == ["0", str(LEASE_ROWS + 2), "0"]

        # A new lease goes on top of the cut table and pushes its last row out: a row diff, no fetch.
        latest = f"default/{bare((await alice.create_lease('board=rpi4', seconds=600)).name)}"
        await in_browser(lambda: wait(browser, lambda b: row_keys(b, "#leases-pending")[:1] == [latest]))
        assert await in_browser(lambda: row_keys(browser, "#leases-pending")) == [latest, *newest[: LEASE_ROWS - 1]]
        assert await in_browser(lambda: counts(browser)) == ["0", str(LEASE_ROWS + 3), "0"]
        await kept(browser)

        # It ends: the row the table cut off must come back, which the page does not have: it fetches its
        # main part again (the tables are new, the window is the same: no reload).
        await alice.delete_lease(latest.removeprefix("default/"))
        await in_browser(lambda: wait(browser, lambda b: not b.execute_script(TABLES_KEPT)))
        assert await in_browser(lambda: browser.execute_script(WINDOW_KEPT))
        assert await in_browser(lambda: row_keys(browser, "#leases-pending")) == newest[:LEASE_ROWS]
        assert await in_browser(lambda: row_keys(browser, "#leases-ended")) == [latest]
        assert await in_browser(lambda: counts(browser)) == ["0", str(LEASE_ROWS + 2), "1"]


async def test_the_timeline_shows_hook_output_as_text(lab: LabController, browser: Any, tmp_path: Path) -> None:
    url = dashboard_url(lab)
    output = "flashing image\n<b>not bold</b> & <script>window.pwned=1</script>\n" + "x" * 3000 + "\nflashed"
    printed = tmp_path / "flash.log"
    printed.write_text(output + "\n")
    # Real hooks: the beforeLease one prints `output`, the afterLease one fails (after-lease-hook-failed: with
    # onFailure warn the exporter would only note it in its next status).
    failing = "echo 'umount: target is busy'; exit 32"
    exporter(lab, "board1", {"board": "rpi4"}, before=f"cat {printed}", after=failing, on_failure="endLease")
    alice_config = lab.create("client", "alice")
    async with Peer.from_config(alice_config) as alice:
        await online(alice, "board1")
        lease = await alice.create_lease("board=rpi4", seconds=600)
        assert ready(lease)
        await reported(alice, "board1", LEASE_READY)  # its beforeLease hook ran
        await alice.delete_lease(bare(lease.name))
        await reported(alice, "board1", AVAILABLE)  # its afterLease hook ran, and failed
        await in_browser(lambda: open_live(browser, lab, url + "exporters/default/board1"))
        runs = await in_browser(lambda: browser.execute_script(
            "return Array.from(document.querySelectorAll('#history tr.hook-run')).map(r => ["
            "r.querySelector('.hook-label').innerText, r.querySelector('pre.hook-output').textContent])"))  # fmt: skip
        # The status after each hook carries the hook's output (its tail) below the status's own line.
        assert [label for label, _ in runs] == ["after_lease hook output", "before_lease hook output"], runs
        (after, before) = (text for _, text in runs)
        assert after.startswith("afterLease hook exited with code 32\n") and "umount: target is busy" in after
        assert before.startswith(f"serving lease {bare(lease.name)}\n") and before.endswith(f"\n{output}"), before
        assert await in_browser(lambda: browser.execute_script("return window.pwned === undefined"))
        assert await in_browser(lambda: browser.execute_script("return document.querySelector('#history b') === null"))
        # The controller keeps the message whole in its events too.
        assert "flashed" in await in_browser(lambda: text_of(browser, "#events"))
        await in_browser(lambda: shot(browser, "timeline"))
        # /metrics counts the real hooks' runs: each one's duration, the afterLease one's failure.
        scraped = await scrape(lab, token_of(alice_config))
        assert value(scraped, "jumpstarter_hook_duration_seconds_count", hook="before_lease") == 1
        assert value(scraped, "jumpstarter_hook_duration_seconds_count", hook="after_lease") == 1
        assert value(scraped, "jumpstarter_hook_failures_total", hook="after_lease") == 1
        assert ("jumpstarter_hook_failures_total", (("hook", "before_lease"),)) not in scraped
    events = lab.admin("get", "events").stdout
    assert "afterLease hook exited with code 32" in events and "umount: target is busy" in events


async def test_a_session_expires_and_the_page_asks_to_log_in_again(
    commands: Commands, tmp_path: Path, browser_factory: Callable[[LabController], Any]
) -> None:
    lab, browser, url = configured_lab(commands, tmp_path, "dashboard:\n  session_lifetime: 3s\n", browser_factory)
    remote = commands.run(*JMP, "admin", "--endpoint", lab.endpoint, "--tls-ca", str(lab.state_dir / "ca.pem"),
                          "--token-file", str(lab.state_dir / "admin.token"), "dashboard-login")  # fmt: skip
    assert remote.returncode == 0, remote
    link = remote.stdout.strip()
    await in_browser(lambda: browser.get(link))
    await in_browser(lambda: click(browser, "#login"))
    opened = time.monotonic()
    # The open page, left alone, goes to the login page once the session ends (no change needed).
    await in_browser(lambda: wait(browser, lambda b: b.current_url.endswith("/login"), timeout=STEP))
    assert time.monotonic() - opened >= 2.0  # not at once: after the session's lifetime
    await in_browser(lambda: browser.get(url + "exporters"))
    assert await in_browser(lambda: browser.current_url.endswith("/login"))
    # The admin credential works on the login page too (and opens a new session).
    admin_token = (lab.state_dir / "admin.token").read_text().strip()
    await in_browser(lambda: login_token(browser, url, admin_token))
    await in_browser(lambda: wait(browser, lambda b: "Clients" in text_of(b, "nav")))

    bad = tmp_path / "bad.yaml"
    bad.write_text("dashboard:\n  session_lifetime: soon\n")
    refused = commands.run(*JMP, "controller", "run", "--state-dir", str(tmp_path / "other"), "--config", str(bad))
    assert refused.returncode != 0 and "session_lifetime" in refused.stderr and "Traceback" not in refused.stderr
