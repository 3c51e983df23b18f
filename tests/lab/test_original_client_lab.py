"""The original 0.9.0 client (`jmp shell`, `jmp create lease`) with our exporter, through our controller and router."""

from __future__ import annotations

from pathlib import Path

import pytest

from jumpstarter.testing import Commands
from testsupport.lab_exporter import lab_exporter_config, original_env, start_lab_exporter, statuses
from testsupport.labcontroller import LabController

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]

TIMEOUT = 90.0


def test_the_originals_shell_drives_our_exporter_lease_after_lease(
    lab: LabController, commands: Commands, upstream_python: Path, upstream_env: dict[str, str]
) -> None:
    env = original_env(upstream_python, upstream_env)
    jmp = str(upstream_python.parent / "jmp")
    hooks = {"beforeLease": {"script": "echo ready for $CLIENT_NAME", "timeout": 30}}
    exporter = start_lab_exporter(commands, lab_exporter_config(lab, "board1", {"board": "x"}, hooks=hooks))
    client = lab.create("client", "alice")

    def shell(*command: str) -> str:
        result = commands.run(jmp, "shell", "--client-config", str(client), "-l", "board=x", "--", *command,
                              timeout=TIMEOUT, **env)  # fmt: skip
        assert result.returncode == 0, result
        return result.stdout

    state = "from jumpstarter.utils.env import env\nwith env() as client: print('state', client.power.call('state'))"
    assert "state True" in shell("sh", "-c", f'j power on && python -c "{state}"')
    # The second lease gets a fresh session: lease 1's power is off again (MockPower starts off).
    assert "state False" in shell("python", "-c", state)
    assert exporter.process.poll() is None
    recorded = statuses(lab, "board1")
    assert recorded[:4] == ["Available", "BeforeLeaseHook", "LeaseReady", "Available"], recorded
