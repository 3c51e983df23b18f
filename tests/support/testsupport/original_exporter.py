"""The original jumpstarter 0.9.0 exporter (`jmp run`) in a lab, for tests: its config from our `jmp admin`.

exporter = start_original_exporter(lab, "board1", {"board": "x"}, env)   # env: original_env(...)
"""

from __future__ import annotations

from pathlib import Path

import yaml

from jumpstarter.testing import Process
from testsupport.labcontroller import LabController

__all__ = ["start_original_exporter"]

TIMEOUT = 60.0


def start_original_exporter(
    lab: LabController, name: str, labels: dict[str, str], env: dict[str, str | None], upstream_python: Path
) -> Process:
    """The original's ``jmp run`` serving its MockPower as ``power``, from the config `jmp admin create exporter` wrote.

    Returned once it waits for leases (it logs "Currently not leased").
    """
    config = lab.create("exporter", name, labels)
    document = yaml.safe_load(config.read_text())
    document["export"] = {"power": {"type": "jumpstarter_driver_power.driver.MockPower"}}
    config.write_text(yaml.safe_dump(document))
    jmp = str(upstream_python.parent / "jmp")
    exporter = lab.commands.start(jmp, "run", "--exporter-config", str(config), **env)
    exporter.wait_for(lambda out, err: "Currently not leased" in out + err, TIMEOUT)
    return exporter
