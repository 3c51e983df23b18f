"""A real lab controller process (`jmp controller run`) and `jmp admin` for tests.

with Commands(tmp_path) as commands:
    lab = LabController.start(commands, tmp_path / "state")
    alice = lab.create("client", "alice", labels={"team": "a"})   # the config file's path
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import grpc

from jumpstarter.client.v1 import client_pb2
from jumpstarter.common.tasks import background_tasks
from jumpstarter.testing import BIN, CommandResult, Commands, Process
from jumpstarter_controller.peers import Peer, SimulatedExporter

JMP = [str(BIN / "jmp")]
# A bound for a lab process's start (imports, keys, database): seconds when the machine is quiet, but
# the whole suite on 2 cores stretches it several times over. Past it, the wait fails with the output.
START = 90.0


@dataclass
class LabController:
    commands: Commands
    state_dir: Path
    process: Process
    endpoint: str
    args: tuple[str, ...]

    @classmethod
    def start(cls, commands: Commands, state_dir: Path, *args: str, listen: str = "127.0.0.1:0") -> LabController:
        argv = (*JMP, "controller", "run", "--state-dir", str(state_dir), "--listen", listen, *args)
        process = commands.start(*argv)
        process.wait_for(lambda out, err: "CA certificate:" in out, START)
        match = re.search(r"controller serving on (\S+)", process.output()[0])
        assert match is not None, process.output()
        return cls(commands, state_dir, process, match.group(1), tuple(args))

    def kill(self, sig: int = signal.SIGKILL) -> None:
        os.kill(self.process.pid, sig)
        self.process.process.wait(10)

    def restart(self) -> None:
        """Start again on the same port with the same state (after `kill`)."""
        again = LabController.start(self.commands, self.state_dir, *self.args, listen=self.endpoint)
        self.process, self.endpoint = again.process, again.endpoint

    def admin(self, *args: str) -> CommandResult:
        return self.commands.run(*JMP, "admin", "--state-dir", str(self.state_dir), *args)

    def create(self, kind: str, name: str, labels: dict[str, str] | None = None, namespace: str = "default") -> Path:
        out = self.commands.directory / f"{namespace}-{name}.yaml"
        flags = [part for key, value in (labels or {}).items() for part in ("--label", f"{key}={value}")]
        result = self.admin("create", kind, name, "--namespace", namespace, *flags, "--out", str(out))
        assert result.returncode == 0, result
        return out


STEP = 30.0  # a bound for waits on events (the whole suite loads 2 cores), not a measure


def conditions(lease: client_pb2.Lease) -> list[tuple[str, str, str]]:
    return [(c.type, c.status, c.reason) for c in lease.conditions]


def ready(lease: client_pb2.Lease) -> bool:
    return bool(lease.conditions) and (lease.conditions[-1].type, lease.conditions[-1].status) == ("Ready", "True")


async def until(peer: Peer, name: str, predicate: Callable[[client_pb2.Lease], bool]) -> client_pb2.Lease:
    """Poll GetLease (as the original's client does) until `predicate(lease)`; fail after STEP seconds."""
    with anyio.fail_after(STEP):
        while True:
            lease = await peer.get_lease(name)
            if predicate(lease):
                return lease
            await anyio.sleep(0.05)


class ExporterStopped(Exception):
    """A simulated exporter stopped serving while the test still used it."""


@asynccontextmanager
async def exporter_running(config: Path, *, register: bool = True) -> AsyncIterator[SimulatedExporter]:
    """A `SimulatedExporter` serving for the body of the block. If it stops before the body ends
    (an error, its Status stream ended, a cancellation nobody asked for), the body is cancelled
    and the block raises `ExporterStopped` naming the exporter and why."""
    async with Peer.from_config(config) as peer, background_tasks() as tasks:
        simulated = SimulatedExporter(peer)
        if register:
            await simulated.register()
        tasks.start_soon(_serve, simulated)
        yield simulated


async def _serve(simulated: SimulatedExporter) -> None:
    name = f"{simulated.peer.namespace}/{simulated.peer.name}"
    try:
        await simulated.run(register=False)
    except (Exception, asyncio.CancelledError) as error:
        if _cancelled():
            raise
        # Left as it is, a CancelledError would cancel the test's body with nothing to say why.
        raise ExporterStopped(f"simulated exporter {name} stopped serving: {_why(error)}") from error
    if not _cancelled():
        raise ExporterStopped(f"simulated exporter {name} stopped serving: the controller ended its Status stream")


def _why(error: BaseException) -> str:
    while isinstance(error, BaseExceptionGroup) and len(error.exceptions) == 1:
        error = error.exceptions[0]
    if isinstance(error, grpc.aio.AioRpcError):
        return f"the controller ended a call with {error.code().name}: {error.details()}"
    if isinstance(error, asyncio.CancelledError):
        return "gRPC cancelled one of its calls (CancelledError: its channel closed?)"
    return repr(error)


def _cancelled() -> bool:
    """Whether an anyio scope around the caller is cancelled (the block ended, or the test's own scope)."""
    return anyio.current_effective_deadline() == -math.inf


async def online(lab_peer: Peer, name: str) -> None:
    with anyio.fail_after(STEP):
        while True:
            exporter = await lab_peer.client.GetExporter(
                client_pb2.GetExporterRequest(name=f"{lab_peer.parent}/exporters/{name}")
            )
            if exporter.online:
                return
            await anyio.sleep(0.05)
