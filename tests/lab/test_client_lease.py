"""Our client leases from our lab controller: `jmp shell --selector`, the lease commands, the
Python API and the pytest plugin, with real processes (the controller, an exporter process
that serves a MockPower through the router, `jmp` itself) over real gRPC and TLS."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from testsupport.lab_exporter import LabBench

pytestmark = pytest.mark.timeout(240)

HOLD_BOUND = 60.0  # a lease of a client killed with SIGKILL is released within this (issue 14)
STEP = 60.0  # a bound for waits on events (the whole suite loads 2 cores), not a measure


def one_line_error(result: object, *, code: int | None = None) -> str:
    stderr: str = result.stderr  # type: ignore[attr-defined]
    returncode: int = result.returncode  # type: ignore[attr-defined]
    assert returncode != 0 and (code is None or returncode == code), result
    assert "Traceback" not in stderr, result
    assert stderr.startswith("jmp: error: ") and len(stderr.splitlines()) == 1, result
    return stderr


def active(bench: LabBench) -> list[dict[str, object]]:
    result = bench.jmp("get", "leases", "-A", "-o", "json")
    assert result.returncode == 0, result
    documents: list[dict[str, object]] = json.loads(result.stdout)
    return documents


def until_no_active_lease(bench: LabBench, bound: float = STEP) -> float:
    """Seconds until no lease of the namespace is active (fails after `bound`)."""
    start = time.monotonic()
    while active(bench):
        assert time.monotonic() - start < bound, "the lease was not released in time"
        time.sleep(0.2)
    return time.monotonic() - start


def test_shell_leases_runs_the_command_through_the_router_and_releases(bench: LabBench) -> None:
    script = 'j power on && echo "$JMP_EXPORTER $JMP_LEASE" && [ "$JMP_HOST_KEEPALIVE" = "$JUMPSTARTER_HOST" ]'
    result = bench.jmp("shell", "-l", "board=rpi4", "--", "sh", "-c", script)
    # The last check: our exporter takes frequent pings, so j connects once through the tunnel, not twice.
    assert result.returncode == 0, result
    assert "power on" in result.stdout
    exporter, lease = result.stdout.strip().splitlines()[-1].split()
    assert exporter == "board1" and lease
    assert active(bench) == []  # released on exit


def test_the_shell_s_keepalive_hint_holds_only_for_its_own_address(monkeypatch: pytest.MonkeyPatch) -> None:
    from jumpstarter.client.endpoint import ExporterEndpoint

    monkeypatch.setenv("JUMPSTARTER_HOST", "/run/lease/socket")
    assert ExporterEndpoint.from_environment().keepalive is None  # no hint: learnt from the report
    monkeypatch.setenv("JMP_HOST_KEEPALIVE", "/run/lease/socket")
    assert ExporterEndpoint.from_environment().keepalive is True
    monkeypatch.setenv("JUMPSTARTER_HOST", "/run/inner/socket")  # a shell inside, on another exporter
    assert ExporterEndpoint.from_environment().keepalive is None


def test_lease_commands_tables_and_outputs(bench: LabBench) -> None:
    created = bench.jmp("create", "lease", "-l", "board=rpi4", "--duration", "1h", "-o", "name")
    assert created.returncode == 0, created
    name = created.stdout.strip()

    listed = json.loads(bench.jmp("get", "leases", "-o", "json").stdout)
    assert [(x["name"], x["selector"], x["duration"]) for x in listed] == [(name, "board=rpi4", "3600s")]
    assert yaml.safe_load(bench.jmp("get", "leases", "-o", "yaml").stdout)[0]["name"] == name
    assert bench.jmp("get", "leases", "-o", "name").stdout == f"{name}\n"
    table = bench.jmp("get", "leases").stdout.splitlines()
    assert table[0].split() == ["NAME", "SELECTOR", "CLIENT", "EXPORTER", "STATE", "DURATION", "ENDS"]
    assert table[1].split()[:6] == [name, "board=rpi4", "alice", "board1", "Ready", "1h"]  # as --duration took it
    # When it ends, and in how long: the time left as durations are written (59m58s, never 0h59m or 3598 s).
    assert re.fullmatch(rf"{re.escape(name)} .*  \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d \(in (59m\d+s|59m|1h)\)", table[1])

    exporters = bench.jmp("get", "exporters", "--with", "leases,status").stdout.splitlines()
    assert exporters[0].split() == ["NAME", "LABELS", "STATUS", "LEASED", "BY", "UNTIL", "WAITING"]
    row = exporters[1].split()
    # Our exporter also registers the reserved jumpstarter.dev/name label, as later originals do.
    assert "board=rpi4" in row[1].split(","), exporters
    assert [row[0], *row[2:4]] == ["board1", "LEASE_READY", "alice"] and row[-1] == "0", exporters
    assert re.search(r"  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(in (59m\d+s|59m|1h)\)  ", exporters[1]), exporters  # UNTIL
    assert [x["name"] for x in json.loads(bench.jmp("get", "exporters", "-o", "json").stdout)] == ["board1"]

    extended = bench.jmp("update", "lease", name, "--duration", "2h", "-o", "json")
    assert extended.returncode == 0, extended
    assert json.loads(extended.stdout)["duration"] == "7200s"
    assert bench.jmp("get", "leases").stdout.splitlines()[1].split()[5] == "2h"

    # --lease uses the existing lease and keeps it.
    used = bench.jmp("shell", "--lease", name, "--", "j", "power", "on")
    assert used.returncode == 0, used
    assert [x["name"] for x in active(bench)] == [name]

    deleted = bench.jmp("delete", "lease", name)
    assert (deleted.returncode, deleted.stdout) == (0, f"lease {name} released\n"), deleted
    ended = next(line for line in bench.jmp("get", "leases", "-a").stdout.splitlines() if line.startswith(name))
    assert re.search(r" Ended +2h +\S+ \S+ \((\d+s|\d+m(\d+s)?) ago\)$", ended), ended
    assert "has already been released" in one_line_error(bench.jmp("delete", "lease", name), code=1)
    assert f"lease {name} has ended" in one_line_error(bench.jmp("shell", "--lease", name, "--", "true"), code=5)


def test_bad_inputs_are_one_line_errors(bench: LabBench, tmp_path: Path) -> None:
    assert "selector" in one_line_error(bench.jmp("shell", "-l", "board in rpi4", "--", "true"), code=5).lower()
    assert "cannot be satisfied" in one_line_error(bench.jmp("shell", "-l", "board=vax", "--", "true"), code=5)
    assert "there is no lease nosuch" in one_line_error(bench.jmp("update", "lease", "nosuch", "--duration", "1h"))
    assert "there is no lease nosuch" in one_line_error(bench.jmp("shell", "--lease", "nosuch", "--", "true"), code=5)
    assert "'1x' is not a duration" in one_line_error(
        bench.jmp("create", "lease", "-l", "a=b", "--duration", "1x"), code=2
    )
    assert "--with takes leases, online and status" in one_line_error(
        bench.jmp("get", "exporters", "--with", "owners"), code=2
    )
    document = yaml.safe_load(bench.alice.read_text())
    document["token"] = document["token"][:-4] + "AAAA"
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(yaml.safe_dump(document))
    wrong.chmod(0o600)
    result = bench.lab.commands.run("jmp", "get", "leases", "--client-config", wrong)
    assert "token" in one_line_error(result, code=1).lower()
    assert document["token"] not in result.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_ends_the_command_and_releases_the_lease(bench: LabBench, signum: int) -> None:
    shell = bench.start_jmp("shell", "-l", "board=rpi4", "--", "sh", "-c", "echo leased; exec sleep 60")
    shell.wait_for(lambda out, err: "leased" in out, timeout=STEP)
    assert len(active(bench)) == 1
    os.kill(shell.pid, signum)
    result = shell.finish(STEP)
    assert result.returncode == 128 + signum, result
    assert active(bench) == []


def test_the_end_of_the_lease_warns_then_hangs_up_the_command(bench: LabBench) -> None:
    start = time.monotonic()
    result = bench.jmp("shell", "-l", "board=rpi4", "--duration", "6s", "--", "sh", "-c", "echo leased; exec sleep 60")
    assert result.returncode == 4, result
    assert time.monotonic() - start < 40
    warning, ended = result.stderr.splitlines()[-2:]
    assert re.fullmatch(
        r"jmp: warning: lease \S+ ends in \ds; the command will then be hung up \(extend it: .*\)", warning
    ), result
    assert ended.startswith("jmp: error: lease ") and ended.endswith("ended (its time is up): the command was hung up")
    assert active(bench) == []


def test_a_client_killed_with_sigkill_leaves_the_exporter_free_within_a_minute(bench: LabBench) -> None:
    shell = bench.start_jmp("shell", "-l", "board=rpi4", "--duration", "1h", "--", "sh", "-c", "echo x; exec sleep 600")
    shell.wait_for(lambda out, err: "x" in out, timeout=STEP)
    (held,) = active(bench)
    assert float(str(held["duration"]).rstrip("s")) <= 60  # held in short steps, not for the whole hour
    os.kill(shell.pid, signal.SIGKILL)
    assert until_no_active_lease(bench, HOLD_BOUND) < HOLD_BOUND
    # The exporter serves the next client.
    assert bench.jmp("shell", "-l", "board=rpi4", "--", "j", "power", "on").returncode == 0


def test_a_lease_extended_with_jmp_update_lease_is_still_released_soon_after_sigkill(bench: LabBench) -> None:
    shell = bench.start_jmp("shell", "-l", "board=rpi4", "--duration", "1m", "--", "sh", "-c", "echo x; exec sleep 600")
    shell.wait_for(lambda out, err: "x" in out, timeout=STEP)
    (held,) = active(bench)
    name = str(held["name"])
    extended = bench.jmp("update", "lease", name, "--duration", "2h", "-o", "json")
    assert extended.returncode == 0, extended
    assert json.loads(extended.stdout)["duration"] == "7200s"  # what was asked for
    (held,) = active(bench)
    assert float(str(held["duration"]).rstrip("s")) <= 60  # the holder still holds it in short steps
    assert "is only extended" in one_line_error(bench.jmp("update", "lease", name, "--duration", "30m"))
    os.kill(shell.pid, signal.SIGKILL)
    assert until_no_active_lease(bench, HOLD_BOUND) < HOLD_BOUND
    # The holder's control socket is gone with it: the update goes to the controller, which says why not.
    assert "has ended" in one_line_error(bench.jmp("update", "lease", name, "--duration", "3h"))


def test_a_waiting_shell_gets_the_exporter_when_its_holder_releases_it(bench: LabBench) -> None:
    holder = bench.jmp("create", "lease", "-l", "board=rpi4", "--duration", "1h", "-o", "name").stdout.strip()
    waiter = bench.start_jmp("shell", "-l", "board=rpi4", "--", "j", "power", "on")
    waiter.wait_for(lambda out, err: "waiting for an exporter" in err, timeout=STEP)
    assert bench.jmp("delete", "lease", holder).returncode == 0
    result = waiter.finish(STEP)
    assert result.returncode == 0, result


def test_the_python_api_and_its_async_twin(bench: LabBench) -> None:
    script = textwrap.dedent(
        """
        import time, anyio
        from jumpstarter.client import lease, lease_async
        from jumpstarter.client.lab import LabClient
        from jumpstarter.config.client import resolve_client

        with lease(selector="board=rpi4", duration=60) as client:
            client.power.on()
            print("sync", type(client).__name__)

        async def main():
            async with lease_async({"board": "rpi4"}, duration=60) as client:
                await client.power.call_async("off")
                print("async", type(client).__name__)
            # The controller's long poll: a waiting GetLease answers once the lease is granted.
            async with LabClient.open(resolve_client().config) as lab:
                holder = await lab.create_lease("board=rpi4", 60)
                waiter = await lab.create_lease("board=rpi4", 60)
                async with anyio.create_task_group() as tasks:
                    async def release():
                        await anyio.sleep(0.5)
                        nonlocal released
                        released = time.monotonic()
                        await lab.delete_lease(holder.name)
                    released = 0.0
                    tasks.start_soon(release)
                    lease_, waited = await lab.wait_lease(waiter.name, 20)
                print("long poll", waited, lease_.conditions[-1].type, time.monotonic() - released < 5)
                await lab.delete_lease(waiter.name)

        anyio.run(main)
        """
    )
    result = bench.lab.commands.run(sys.executable, "-c", script, JMP_CLIENT_CONFIG=str(bench.alice))
    assert result.returncode == 0, result
    assert result.stdout.splitlines() == ["sync CompositeClient", "async CompositeClient", "long poll True Ready True"]
    assert active(bench) == []


def test_the_pytest_plugin_leases_for_the_session(bench: LabBench, tmp_path: Path) -> None:
    tests = tmp_path / "board_tests"
    tests.mkdir()
    (tests / "test_board.py").write_text(
        "def test_power(jumpstarter_client):\n    jumpstarter_client.power.on()\n\n"
        "def test_again(jumpstarter_client):\n    jumpstarter_client.power.off()\n"
    )
    pytest_argv = (sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", tests, tests)
    env = {"JMP_CLIENT_CONFIG": str(bench.alice)}
    by_option = bench.lab.commands.run(*pytest_argv, "--jumpstarter-selector", "board=rpi4", **env)
    assert by_option.returncode == 0, by_option
    assert "2 passed" in by_option.stdout
    (tests / "pytest.ini").write_text("[pytest]\njumpstarter_selector = board=rpi4\njumpstarter_duration = 5m\n")
    by_ini = bench.lab.commands.run(*pytest_argv, **env)
    assert by_ini.returncode == 0, by_ini
    assert active(bench) == []


def test_the_original_s_jumpstarter_test_class_leases_by_its_selector(bench: LabBench, tmp_path: Path) -> None:
    tests = tmp_path / "class_tests"
    tests.mkdir()
    (tests / "test_class.py").write_text(
        textwrap.dedent(
            """
            from jumpstarter_testing.pytest import JumpstarterTest

            class TestBoard(JumpstarterTest):
                selector = "board=rpi4"

                def test_power(self, client):
                    client.power.on()

                def test_same_exporter(self, client):
                    client.power.off()

            class TestNoSelector(JumpstarterTest):
                def test_says_how(self, client):
                    pass
            """
        )
    )
    argv = (sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", tests, tests)
    result = bench.lab.commands.run(*argv, JMP_CLIENT_CONFIG=str(bench.alice))
    assert result.returncode == 1, result
    assert "2 passed, 1 error" in result.stdout, result
    assert "TestNoSelector: run inside jmp shell, or set the class's selector" in result.stdout
    assert active(bench) == []


def test_a_shell_follows_an_extension_made_with_jmp_update_lease(bench: LabBench) -> None:
    script = 'jmp update lease "$JMP_LEASE" --duration 45s -o name && sleep 16 && echo survived'
    result = bench.jmp("shell", "-l", "board=rpi4", "--duration", "12s", "--", "sh", "-c", script,
                       JMP_CLIENT_CONFIG=str(bench.alice))  # fmt: skip
    assert result.returncode == 0, result
    assert result.stdout.splitlines()[-1] == "survived"


def test_a_signal_while_waiting_for_an_exporter_stops_and_releases_the_waiting_lease(bench: LabBench) -> None:
    holder = bench.jmp("create", "lease", "-l", "board=rpi4", "--duration", "1h", "-o", "name").stdout.strip()
    waiter = bench.start_jmp("shell", "-l", "board=rpi4", "--", "true")
    waiter.wait_for(lambda out, err: "waiting for an exporter" in err, timeout=STEP)
    os.kill(waiter.pid, signal.SIGTERM)
    result = waiter.finish(STEP)
    assert result.returncode == 128 + signal.SIGTERM, result
    assert result.stderr.splitlines()[-1] == "jmp: error: stopped before an exporter was granted", result
    assert [x["name"] for x in active(bench)] == [holder]  # the waiting lease was released


def before_lease(script: str) -> dict[str, object]:
    return {"hooks": {"beforeLease": {"script": script, "onFailure": "endLease", "timeout": 30}}}


def test_the_command_starts_once_the_before_lease_hook_is_done(bench: LabBench) -> None:
    # The hook switches the power on after a while: a command run before LEASE_READY would see it off.
    bench.add_exporter("board2", {"board": "hooked"}, **before_lease("sleep 3; j power on"))
    result = bench.jmp("shell", "-l", "board=hooked", "--", "j", "power", "state")
    assert result.returncode == 0, result
    assert result.stdout.strip().splitlines()[-1] == "on", result

    script = textwrap.dedent(
        """
        from jumpstarter.client import lease

        with lease(selector="board=hooked", duration=60) as client:
            print(client.power.state())
        """
    )
    leased = bench.lab.commands.run(sys.executable, "-c", script, JMP_CLIENT_CONFIG=str(bench.alice))
    assert leased.returncode == 0, leased
    assert leased.stdout.splitlines() == ["True"], leased
    assert active(bench) == []


# At once: the controller refuses to Dial the failed exporter, or the lease has ended when the
# client dials. After a while: the client is waiting through the tunnel when the hook fails.
@pytest.mark.parametrize("script", ["echo it broke; exit 5", "sleep 2; echo it broke; exit 5"],
                         ids=["at-once", "after-a-while"])  # fmt: skip
def test_a_failed_before_lease_hook_ends_the_shell_with_its_message(bench: LabBench, script: str) -> None:
    bench.add_exporter("board2", {"board": "hooked"}, **before_lease(script))
    result = bench.jmp("shell", "-l", "board=hooked", "--", "echo", "ran")
    error = one_line_error(result, code=6)
    assert "ran" not in result.stdout, result
    assert "exporter board2 cannot serve lease" in error and "beforeLease hook exited with code 5" in error, error
    assert active(bench) == []
