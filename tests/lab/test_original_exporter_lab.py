"""Our client (`jmp shell --selector`, `lease()`) with the original 0.9.0 exporter, through our controller and router.

The exporter's config is the one our `jmp admin create exporter` wrote, with its MockPower added.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from jumpstarter.testing import Commands
from testsupport.lab_exporter import original_env, statuses
from testsupport.labcontroller import JMP, LabController
from testsupport.original_exporter import start_original_exporter

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]

TIMEOUT = 90.0

LEASE_SCRIPT = textwrap.dedent(
    """
    from jumpstarter.client import lease

    with lease(selector="board=x", duration=60) as client:
        client.power.on()
        print("read", next(iter(client.power.read())).voltage)
        client.power.off()
    with lease(selector="board=x", duration=60) as client:  # the next lease, the same exporter
        client.power.on()
        print("again")
    """
)


def test_our_shell_and_lease_drive_the_originals_exporter(
    lab: LabController, commands: Commands, upstream_python: Path, upstream_env: dict[str, str]
) -> None:
    exporter = start_original_exporter(lab, "board1", {"board": "x"}, original_env(upstream_python, upstream_env),
                                       upstream_python)  # fmt: skip
    alice = lab.create("client", "alice")

    script = 'j power on && j power read | head -1 && echo "on $JMP_EXPORTER$JMP_HOST_KEEPALIVE"'
    shell = commands.run(*JMP, "shell", "--client-config", str(alice), "--selector", "board=x", "--", "sh", "-c",
                         script, timeout=TIMEOUT)  # fmt: skip
    assert shell.returncode == 0, shell
    assert shell.stdout.splitlines()[-1] == "on board1", shell  # no keepalive hint: the original takes no pings
    assert "Traceback" not in shell.stderr, shell

    leased = commands.run(sys.executable, "-c", LEASE_SCRIPT, JMP_CLIENT_CONFIG=str(alice), timeout=TIMEOUT)
    assert leased.returncode == 0, leased
    assert leased.stdout.splitlines() == ["read 0.0", "again"], leased
    # anyio's Unix socket race (a receive cancelled as data arrives: test_anyio_unix_receive_race.py)
    # is kept out of the user's output by our client's loops (jumpstarter.common.loops).
    assert "Traceback" not in leased.stderr and "Exception" not in leased.stderr, leased

    assert exporter.process.poll() is None
    leases = lab.admin("get", "leases").stdout
    assert "Ready" not in leases.replace("NotReady", ""), leases  # every lease was released
    recorded = statuses(lab, "board1")
    assert recorded.count("LeaseReady") == 3 and recorded[-1] == "Available", recorded
