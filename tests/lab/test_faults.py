"""The lab under faults, with real processes: the controller killed for over a minute under a
`jmp shell` whose command keeps calling `j`; networks that break (network namespaces).

The other faults of issue 14 are with the features they break: the exporter killed mid-lease
and the hooks in test_exporter_link.py, the client killed in test_client_lease.py.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import anyio
import pytest
import yaml

from jumpstarter.client import connect
from jumpstarter.testing import Commands, Process
from jumpstarter_controller.peers import Peer, bare
from jumpstarter_controller.state import StateDir
from testsupport.lab_exporter import lab_exporter_config, power_state, start_lab_exporter, tunnel
from testsupport.labcontroller import JMP, LabController, online
from testsupport.netns import net_skip_reason, veth_namespace
from testsupport.router import start_router

# The controller's outage: longer than a hold step of our client (30 s) and than the failovers
# the issue asks to survive (60 s); the original's exporter gives up after 3 to 5 s.
OUTAGE_SECONDS = 62.0
STEP = 60.0  # a bound for waits on events (the whole suite loads 2 cores), not a measure

# A command that calls `j` until told to stop, counting its calls; the first failure ends it (status 7).
LOOP = 'n=0; while [ ! -e "$STOP" ]; do j power on >/dev/null || exit 7; n=$((n+1)); echo $n > "$COUNT"; done'


def controller_with_a_router(commands: Commands, tmp_path: Path, host: str = "127.0.0.1") -> LabController:
    """A controller whose leases go through a separate `jmp router run` (sharing its state directory)."""
    state = StateDir(tmp_path / "state")
    state.ca(), state.signing_key()
    _, router = start_router(commands, "--controller-state", state.path, "--listen", f"{host}:0")
    config = tmp_path / "controller.yaml"
    config.write_text(yaml.safe_dump({"routers": [{"endpoint": router}]}))
    return LabController.start(commands, state.path, "--config", str(config), listen=f"{host}:0")


def calls(count: Path) -> int:
    try:
        return int(count.read_text() or 0)
    except (FileNotFoundError, ValueError):  # not yet written, or being written
        return 0


def wait(predicate: object, what: str, bound: float = STEP) -> None:
    deadline = time.monotonic() + bound
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def held_leases(lab: LabController, client: Path) -> list[dict[str, object]]:
    result = lab.commands.run(*JMP, "get", "leases", "--client-config", str(client), "-o", "json")
    assert result.returncode == 0, result
    leases: list[dict[str, object]] = json.loads(result.stdout)
    return leases


@pytest.mark.timeout(300)
def test_a_shell_keeps_working_through_a_minute_without_its_controller(commands: Commands, tmp_path: Path) -> None:
    lab = controller_with_a_router(commands, tmp_path)
    exporter = start_lab_exporter(commands, lab_exporter_config(lab, "board1", {"board": "x"}))
    client = lab.create("client", "alice")
    count, stop = tmp_path / "count", tmp_path / "stop"
    shell: Process = commands.start(
        *JMP, "shell", "--client-config", str(client), "-l", "board=x", "--duration", "30m", "--",
        "sh", "-c", LOOP, COUNT=str(count), STOP=str(stop),
    )  # fmt: skip
    wait(lambda: calls(count) > 0, "the first j call through the lease")
    [lease] = held_leases(lab, client)

    lab.kill()  # SIGKILL: no goodbye to anyone
    exporter.wait_for(lambda out, err: "lost the controller" in err, STEP)
    before = calls(count)
    time.sleep(OUTAGE_SECONDS)  # the outage itself, not a wait for an event
    during = calls(count)
    assert shell.process.poll() is None, shell.output()
    assert during > before, "the shell's calls stopped while the controller was away"
    restarted = time.time()
    lab.restart()

    # The exporter is registered again with the same lease, and the shell extends its lease again
    # (its 30 s step ran out while the controller was away: the controller's restart grace kept it).
    wait(lambda: "registered with the controller" in exporter.output()[1].split("lost the controller")[-1],
         "the exporter to register again")  # fmt: skip

    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(restarted))

    def extended() -> bool:  # the audit table's lines: TIME WHO WHAT ... (ISO times sort as text)
        lines = lab.admin("get", "events").stdout.splitlines()
        return any(line >= since and "lease extended" in line and str(lease["name"]) in line for line in lines)

    wait(extended, "the shell to extend its lease after the restart")
    [still] = held_leases(lab, client)
    assert still["name"] == lease["name"] and str(still["exporter"]).endswith("board1"), still
    after = calls(count)
    wait(lambda: calls(count) > after, "a call after the restart")

    stop.touch()
    result = shell.finish(STEP)
    assert result.returncode == 0, result  # not one j call failed
    assert held_leases(lab, client) == []  # released on exit
    assert exporter.process.poll() is None


# A client whose path breaks gets an error within this (issue 14: "within a few seconds"): the
# shared connection pings our exporter every 5 s and gives up 5 s after an unanswered ping.
BROKEN_PATH_BOUND = 15.0
NO_NAMESPACES = net_skip_reason()


class Caller(threading.Thread):
    """One client connection through `path` calling `power.on` until it fails: when, and how."""

    def __init__(self, path: str) -> None:
        super().__init__(daemon=True)
        self.path, self.calls, self.failed_at, self.error = path, 0, 0.0, ""
        self.started_calling = threading.Event()

    def run(self) -> None:
        try:
            with connect(self.path) as client:
                while True:
                    client.power.on()
                    self.calls += 1
                    self.started_calling.set()
        except Exception as error:
            self.failed_at, self.error = time.monotonic(), str(error)
            self.started_calling.set()


def power_state_once_back(path: str) -> bool:
    """`power_state` through `path` as soon as the exporter serves the lease again (its Status stream and
    Listen follow its registration: a connection made in between is refused as offline)."""
    deadline = time.monotonic() + STEP
    while True:
        try:
            return power_state(path)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.mark.skipif(NO_NAMESPACES is not None, reason=f"no network namespaces: {NO_NAMESPACES}")
@pytest.mark.timeout(300)
@pytest.mark.anyio
async def test_an_exporter_behind_a_link_that_breaks(commands: Commands, tmp_path: Path) -> None:
    with veth_namespace() as net:
        # The controller and the router on this side of the pair; the exporter in the namespace reaches
        # them over the veth, the client from this side. Only the exporter's path can break.
        lab = controller_with_a_router(commands, tmp_path, net.host_address)
        config = lab_exporter_config(lab, "board1", {"board": "x"})
        argv = net.run(*JMP, "exporter", "run", "--config", str(config), "--log-level", "INFO")
        exporter = commands.start(*argv)
        exporter.wait_for(lambda out, err: "registered with the controller" in err, STEP)
        client = lab.create("client", "alice")
        async with Peer.from_config(client) as alice:
            await online(alice, "board1")
            lease = bare((await alice.create_lease("board=x", seconds=600)).name)
            async with tunnel(client, lease) as path:
                caller = Caller(path)
                caller.start()
                await anyio.to_thread.run_sync(caller.started_calling.wait, STEP)
                assert caller.calls > 0, caller.error

                net.link(up=False)  # the exporter's cable pulled
                broke = time.monotonic()
                await anyio.to_thread.run_sync(caller.join, STEP)
                assert caller.failed_at, "the client's calls went on through a broken path"
                assert caller.failed_at - broke < BROKEN_PATH_BOUND, caller.failed_at - broke
                assert "the leased exporter cannot be reached through the router" in caller.error, caller.error
                # The exporter notices that it lost the controller (its pings go unanswered) and keeps trying.
                await anyio.to_thread.run_sync(
                    lambda: exporter.wait_for(lambda out, err: "lost the controller" in err, STEP)
                )
                net.link(up=True)
                await anyio.to_thread.run_sync(
                    lambda: exporter.wait_for(
                        lambda out, err: "registered with the controller" in err.split("lost the controller")[-1],
                        STEP,
                    )
                )
                # The lease resumes: the same session (the power is still on), through the same tunnel.
                assert await anyio.to_thread.run_sync(power_state_once_back, path) is True
            await alice.delete_lease(lease)
        assert exporter.process.poll() is None
