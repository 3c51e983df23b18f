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
import sys
from pathlib import Path

import anyio
import grpc
import yaml
from anyio.abc import TaskGroup

from jumpstarter.driver.composite import Composite
from jumpstarter.streams.copy import splice
from jumpstarter.streams.frames import FrameStream
from jumpstarter.testing import serve_socket_async
from jumpstarter.v1 import router_pb2_grpc
from jumpstarter_controller.peers import Peer, SimulatedExporter
from jumpstarter_driver_power.driver import MockPower


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
    ca = base64.b64decode(yaml.safe_load(config.read_text())["tls"]["ca"])
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


if __name__ == "__main__":
    anyio.run(main, Path(sys.argv[1]))
