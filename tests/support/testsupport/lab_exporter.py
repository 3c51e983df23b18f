"""A lab exporter process for the client's lease tests: `python -m testsupport.lab_exporter CONFIG`.

It follows the original 0.9.0 exporter's sequence with the controller (`SimulatedExporter`:
Register, AVAILABLE, the Status stream, Listen per lease, LEASE_READY) and, for every dial it
hears of on Listen, opens the router's Stream and carries it to a real session of a
`MockPower` driver (tree: ``power``), served on a private Unix socket. Our own exporter's
controller link is built elsewhere; this stands in for it, a real process with real gRPC.

It prints ``exporter ready`` once registered and AVAILABLE, and the number of sessions
carried so far (``carried N``) after each dial.
"""

from __future__ import annotations

import base64
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import anyio
import grpc
import yaml
from anyio.abc import TaskGroup
from jumpstarter_driver_power.driver import MockPower

from jumpstarter.driver.composite import Composite
from jumpstarter.streams.copy import splice
from jumpstarter.streams.frames import FrameStream
from jumpstarter.testing import CommandResult, Commands, Process, serve_socket_async
from jumpstarter.v1 import router_pb2_grpc
from jumpstarter_controller.peers import Peer, SimulatedExporter
from testsupport.labcontroller import JMP, LabController

# The directory of testsupport, for the exporter processes' PYTHONPATH.
SUPPORT = os.fspath(Path(__file__).resolve().parent.parent)


async def _carry(socket: str, ca: bytes, endpoint: str, token: str) -> None:
    async with grpc.aio.secure_channel(endpoint, grpc.ssl_channel_credentials(root_certificates=ca)) as channel:
        call = router_pb2_grpc.RouterServiceStub(channel).Stream(metadata=(("authorization", f"Bearer {token}"),))
        frames = FrameStream(call, client_side=True)
        try:
            async with await anyio.connect_unix(socket) as session:
                await splice(frames, session)
        except* (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            pass
        finally:
            await frames.aclose()


async def _follow_dials(simulated: SimulatedExporter, socket: str, ca: bytes, tasks: TaskGroup) -> None:
    seen = 0
    while True:
        dialled = simulated.dialled
        while seen < len(simulated.dials):
            endpoint, token = simulated.dials[seen]
            seen += 1
            tasks.start_soon(_carry, socket, ca, endpoint, token)
            print(f"carried {seen}", flush=True)
        await dialled.wait()


async def main(config: Path) -> None:
    ca = base64.b64decode(yaml.safe_load(await anyio.Path(config).read_text())["tls"]["ca"])
    root = Composite(children={"power": MockPower()})
    async with (
        serve_socket_async(root) as socket,
        Peer.from_config(config) as peer,
        anyio.create_task_group() as tasks,
    ):
        simulated = SimulatedExporter(peer)
        await simulated.register()
        tasks.start_soon(lambda: simulated.run(register=False))
        tasks.start_soon(_follow_dials, simulated, socket, ca, tasks)
        print("exporter ready", flush=True)
        await anyio.sleep_forever()


@dataclass
class LabBench:
    """A lab for the client's tests: its controller, client `alice`'s config, exporter processes."""

    lab: LabController
    alice: Path
    exporters: list[Process]

    def jmp(self, *argv: str | Path, **env: str | None) -> CommandResult:
        """``jmp ARGV --client-config ALICE`` to its end (the option goes after the subcommand)."""
        return self.lab.commands.run(*JMP, *_with_client(argv, self.alice), **env)

    def start_jmp(self, *argv: str | Path, **env: str | None) -> Process:
        return self.lab.commands.start(*JMP, *_with_client(argv, self.alice), **env)

    def add_exporter(self, name: str, labels: dict[str, str]) -> Process:
        config = self.lab.create("exporter", name, labels=labels)
        process = self.lab.commands.start(sys.executable, "-m", "testsupport.lab_exporter", config, PYTHONPATH=SUPPORT)
        process.wait_for(lambda out, err: "exporter ready" in out)
        self.exporters.append(process)
        return process


def _with_client(argv: tuple[str | Path, ...], config: Path) -> list[str | Path]:
    """The client option goes after the command's words (jmp shell, jmp get leases...)."""
    words = 1 if argv and argv[0] == "shell" else 2
    return [*argv[:words], "--client-config", config, *argv[words:]]


def start_lab_bench(commands: Commands, state_dir: Path) -> LabBench:
    lab = LabController.start(commands, state_dir)
    bench = LabBench(lab, lab.create("client", "alice"), [])
    bench.add_exporter("board1", {"board": "rpi4"})
    return bench


if __name__ == "__main__":
    anyio.run(main, Path(sys.argv[1]))
