"""Our exporter in a lab, for tests: its config from `jmp admin`, the process, a client's tunnel, the statuses.

config = lab_exporter_config(lab, "board1", {"board": "x"}, hooks={...})
exporter = start_lab_exporter(commands, config)            # jmp exporter run --config FILE
async with tunnel(client, lease) as path:                       # the client's tunnel, through the router
    state = await anyio.to_thread.run_sync(power_state, path)   # a blocking client, through the router
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import yaml

from jumpstarter.client import connect
from jumpstarter.client.lab import LabClient
from jumpstarter.client.tunnel import tunnel as client_tunnel
from jumpstarter.client.v1 import client_pb2
from jumpstarter.config.client import load_client_config
from jumpstarter.testing import CommandResult, Commands, Process
from jumpstarter_controller.peers import Peer
from testsupport.labcontroller import JMP, START, STEP, LabController

__all__ = [
    "LabBench",
    "exporter_status",
    "lab_exporter_config",
    "original_env",
    "power_state",
    "start_lab_bench",
    "start_lab_exporter",
    "statuses",
    "switch_on",
    "tunnel",
]

JOINING = "joining the lab controller"
# The status names the controller's events give (the "exporter status" events' WHY column).
_STATUS = re.compile(r"exporter status\s.*?\s(Unspecified|Offline|Available|BeforeLeaseHookFailed|BeforeLeaseHook|"
                     r"LeaseReady|AfterLeaseHookFailed|AfterLeaseHook): ")  # fmt: skip


def original_env(upstream_python: Path, upstream_env: dict[str, str]) -> dict[str, str | None]:
    """The environment of the original's commands: its jmp and j first on PATH, none of our settings."""
    path = f"{upstream_python.parent}{os.pathsep}{upstream_env.get('PATH', '')}"
    return {"PATH": path, "NONINTERACTIVE": "1", "PYTHONPATH": None, "VIRTUAL_ENV": None}


def lab_exporter_config(lab: LabController, name: str, labels: dict[str, str], **extra: Any) -> Path:
    """The config `jmp admin create exporter` writes, with a MockPower and `extra` top-level keys (hooks...)."""
    config = lab.create("exporter", name, labels)
    document = yaml.safe_load(config.read_text())
    document["export"] = {"power": {"type": "MockPower"}}
    document.update(extra)
    config.write_text(yaml.safe_dump(document))
    return config


def start_lab_exporter(commands: Commands, config: Path, *args: str, log_level: str = "INFO") -> Process:
    """``jmp exporter run --config CONFIG``, once it has registered (it logs so)."""
    process = commands.start("jmp", "exporter", "run", "--config", str(config), "--log-level", log_level, *args)
    process.wait_for(lambda out, err: "registered with the controller" in err, START)
    return process


@asynccontextmanager
async def tunnel(client_config: Path, lease: str) -> AsyncIterator[str]:
    """The client's own tunnel to `lease` (jumpstarter.client.tunnel, as `jmp shell` serves it): its socket's path."""
    async with LabClient.open(load_client_config(client_config)) as lab, client_tunnel(lab, lease) as path:
        yield path


async def exporter_status(peer: Peer, name: str, wanted: int) -> client_pb2.Exporter:
    """The exporter as `peer` sees it, once its status is `wanted` (fail after STEP seconds)."""
    with anyio.fail_after(STEP):
        while True:
            exporter: client_pb2.Exporter = await peer.client.GetExporter(
                client_pb2.GetExporterRequest(name=f"{peer.parent}/exporters/{name}")
            )
            if exporter.status == wanted:
                return exporter
            await anyio.sleep(0.05)


def power_state(path: str) -> bool:
    """The MockPower's state, through `path` (blocking: run it in a thread)."""
    with connect(path) as client:
        return bool(client.power.state())


def switch_on(path: str) -> None:
    with connect(path) as client:
        client.power.on()


def statuses(lab: LabController, exporter: str) -> list[str]:
    """The statuses the controller recorded for `exporter`, in order (its audit events)."""
    events = lab.admin("get", "events").stdout
    return [m.group(1) for line in events.splitlines() if f" {exporter} " in line and (m := _STATUS.search(line))]


@dataclass
class LabBench:
    """A lab for the client's tests: its controller, client `alice`'s config, our exporter processes."""

    lab: LabController
    alice: Path
    exporters: list[Process]

    def jmp(self, *argv: str | Path, **env: str | None) -> CommandResult:
        """``jmp ARGV --client-config ALICE`` to its end (the option goes after the subcommand)."""
        return self.lab.commands.run(*JMP, *_with_client(argv, self.alice), **env)

    def start_jmp(self, *argv: str | Path, **env: str | None) -> Process:
        return self.lab.commands.start(*JMP, *_with_client(argv, self.alice), **env)

    def add_exporter(self, name: str, labels: dict[str, str], **extra: Any) -> Process:
        """Our `jmp exporter run`, serving a MockPower as ``power`` (`extra`: hooks...), once registered."""
        process = start_lab_exporter(self.lab.commands, lab_exporter_config(self.lab, name, labels, **extra))
        self.exporters.append(process)
        return process


def _with_client(argv: tuple[str | Path, ...], config: Path) -> list[str | Path]:
    """The client option goes after the command's words (jmp shell, jmp get leases...)."""
    words = 1 if argv and argv[0] == "shell" else 2
    return [*argv[:words], "--client-config", config, *argv[words:]]


def start_lab_bench(commands: Commands, state_dir: Path) -> LabBench:
    """A controller, client `alice` and our exporter `board1` (board=rpi4)."""
    lab = LabController.start(commands, state_dir)
    bench = LabBench(lab, lab.create("client", "alice"), [])
    bench.add_exporter("board1", {"board": "rpi4"})
    return bench
