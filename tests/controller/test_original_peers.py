"""The original jumpstarter 0.9.0 against our controller: its exporter, shell and lease commands, unmodified.

Configs come from our `jmp admin create`; the exporter's gets a driver added, as a user would.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from jumpstarter.testing import Commands
from testsupport.lab_exporter import original_env as original
from testsupport.labcontroller import LabController
from testsupport.original_exporter import start_original_exporter

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]

TIMEOUT = 60.0


def test_original_exporter_shell_and_lease_commands(
    lab: LabController, commands: Commands, upstream_python: Path, upstream_env: dict[str, str]
) -> None:
    env = original(upstream_python, upstream_env)
    jmp = str(upstream_python.parent / "jmp")
    exporter = start_original_exporter(lab, "board1", {"board": "x"}, env, upstream_python)
    client = lab.create("client", "alice")

    listed = commands.run(jmp, "get", "exporters", "--client-config", str(client), timeout=TIMEOUT, **env)
    assert listed.returncode == 0 and "board1" in listed.stdout and "board=x" in listed.stdout, listed

    shell = commands.run(
        jmp, "shell", "--client-config", str(client), "-l", "board=x", "--", "j", "power", "on", timeout=TIMEOUT, **env
    )
    assert shell.returncode == 0, shell
    assert exporter.process.poll() is None  # still serving, and free again (the next lease gets it)

    created = commands.run(jmp, "create", "lease", "--client-config", str(client), "-l", "board=x", "--duration",
                           "10m", "-o", "name", timeout=TIMEOUT, **env)  # fmt: skip
    assert created.returncode == 0, created
    name = created.stdout.strip()
    updated = commands.run(jmp, "update", "lease", name, "--duration", "20m", "--client-config", str(client),
                           timeout=TIMEOUT, **env)  # fmt: skip
    assert updated.returncode == 0, updated
    leases = lab.admin("get", "leases")
    assert name in leases.stdout and "board1" in leases.stdout, leases  # the exporter is free again: granted
    deleted = commands.run(jmp, "delete", "leases", name, "--client-config", str(client), timeout=TIMEOUT, **env)
    assert deleted.returncode == 0 and "deleted" in deleted.stdout, deleted
    events = lab.admin("get", "events").stdout
    assert "exporter registered" in events and "lease extended" in events
