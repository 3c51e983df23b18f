"""Lightweight peers of the controller, for tests and benchmarks: a client and a simulated exporter.

They speak the wire protocol exactly as the original's peers do (TLS, the four metadata
keys, the exporter's Register/ReportStatus/Status/Listen sequence and its `leased=false` then
AVAILABLE acknowledgement), from a config file that `jmp admin create` wrote, and without
any hardware: a `SimulatedExporter` answers leases and counts the dials it is told about.

    async with Peer.from_config(Path("alice.yaml")) as alice:
        lease = await alice.create_lease("board=rpi4", seconds=60)
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable, Generator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import grpc
import yaml
from google.protobuf.duration_pb2 import Duration

from jumpstarter.client.v1 import client_pb2, client_pb2_grpc
from jumpstarter.common.calls import cancellable
from jumpstarter.common.channels import identified_channel, identity
from jumpstarter.v1 import common_pb2, jumpstarter_pb2, jumpstarter_pb2_grpc

__all__ = ["Peer", "SimulatedExporter"]

AVAILABLE = common_pb2.EXPORTER_STATUS_AVAILABLE
LEASE_READY = common_pb2.EXPORTER_STATUS_LEASE_READY
OFFLINE = common_pb2.EXPORTER_STATUS_OFFLINE


@dataclass
class Peer:
    """A client or exporter identity with its open channel to the controller."""

    kind: str
    namespace: str
    name: str
    endpoint: str
    channel: grpc.aio.Channel
    client: client_pb2_grpc.ClientServiceStub = field(init=False)
    controller: jumpstarter_pb2_grpc.ControllerServiceStub = field(init=False)

    def __post_init__(self) -> None:
        calls = _AnyioCalls(self.channel)
        self.client = client_pb2_grpc.ClientServiceStub(calls)
        self.controller = jumpstarter_pb2_grpc.ControllerServiceStub(calls)

    @classmethod
    @asynccontextmanager
    async def from_config(cls, path: Path, *, token: str | None = None) -> AsyncIterator[Peer]:
        document = yaml.safe_load(await anyio.Path(path).read_text())
        kind = "client" if document["kind"] == "ClientConfig" else "exporter"
        ca = base64.b64decode(document["tls"]["ca"])
        namespace, name = document["metadata"]["namespace"], document["metadata"]["name"]
        metadata = identity(token or document["token"], kind.title(), namespace, name)
        async with identified_channel(document["endpoint"], metadata, ca=ca) as channel:
            yield cls(kind, namespace, name, document["endpoint"], channel)

    @property
    def parent(self) -> str:
        return f"namespaces/{self.namespace}"

    def lease_name(self, name: str) -> str:
        return f"{self.parent}/leases/{name}"

    async def create_lease(self, selector: str = "", *, seconds: float = 60, **fields: Any) -> client_pb2.Lease:
        lease = client_pb2.Lease(selector=selector, duration=Duration(seconds=int(seconds)), exporter_name="", **fields)
        created: client_pb2.Lease = await self.client.CreateLease(
            client_pb2.CreateLeaseRequest(parent=self.parent, lease=lease)
        )
        return created

    async def get_lease(self, name: str) -> client_pb2.Lease:
        found: client_pb2.Lease = await self.client.GetLease(client_pb2.GetLeaseRequest(name=self.lease_name(name)))
        return found

    async def delete_lease(self, name: str) -> None:
        await self.client.DeleteLease(client_pb2.DeleteLeaseRequest(name=self.lease_name(name)))


class _AnyioCalls:
    """The channel as the stubs see it: each unary call is awaited through `cancellable`.

    Without it, a cancel scope around a call (a `move_on_after` in a test, the task group of a
    simulated exporter) would end in gRPC's own CancelledError, which anyio takes for a
    cancellation from outside: it escapes the scope and cancels whatever holds the task.
    """

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._channel = channel

    def unary_unary(self, *args: Any, **kwargs: Any) -> Callable[..., _CancellableCall]:
        method = self._channel.unary_unary(*args, **kwargs)
        return lambda *call_args, **call_kwargs: _CancellableCall(method(*call_args, **call_kwargs))

    def __getattr__(self, name: str) -> Any:  # streams keep anyio's CancelledError: gRPC's own methods
        return getattr(self._channel, name)


@dataclass(frozen=True)
class _CancellableCall:
    call: Any  # grpc.aio.UnaryUnaryCall

    def __await__(self) -> Generator[Any, None, Any]:
        return cancellable(self.call).__await__()


def bare(resource_name: str) -> str:
    return resource_name.rsplit("/", 1)[-1]


@dataclass
class SimulatedExporter:
    """Registers, reports AVAILABLE, follows its Status stream like the original's exporter."""

    peer: Peer
    leases: list[str] = field(default_factory=list)
    dials: list[tuple[str, str]] = field(default_factory=list)
    current: str | None = None
    changed: anyio.Event = field(default_factory=anyio.Event)
    dialled: anyio.Event = field(default_factory=anyio.Event)

    async def register(self) -> None:
        report = jumpstarter_pb2.DriverInstanceReport(
            uuid="00000000-0000-0000-0000-000000000001",
            labels={"jumpstarter.dev/client": "jumpstarter_driver_composite.client.CompositeClient"},
        )
        await self.peer.controller.Register(jumpstarter_pb2.RegisterRequest(reports=[report]))
        await self.report(AVAILABLE, "Exporter registered and available")

    async def report(self, status: int, message: str = "") -> None:
        await self.peer.controller.ReportStatus(jumpstarter_pb2.ReportStatusRequest(status=status, message=message))  # type: ignore[arg-type]

    async def run(self, *, register: bool = True) -> None:
        """Serve leases until cancelled (the Status stream, and a Listen per lease)."""
        if register:
            await self.register()
        async with anyio.create_task_group() as tasks:
            listening: anyio.CancelScope | None = None
            async for status in self.peer.controller.Status(jumpstarter_pb2.StatusRequest()):
                if status.leased and status.lease_name != self.current:
                    self.current = status.lease_name
                    self.leases.append(status.lease_name)
                    listening = anyio.CancelScope()
                    tasks.start_soon(self._listen, status.lease_name, listening)
                    await self.report(LEASE_READY, "Ready for commands")
                elif not status.leased and self.current is not None:
                    self.current = None
                    if listening is not None:
                        listening.cancel()
                    await self.report(AVAILABLE, "Available for new lease")
                self.changed.set()
                self.changed = anyio.Event()

    async def _listen(self, lease: str, scope: anyio.CancelScope) -> None:
        with scope:
            try:
                async for ticket in self.peer.controller.Listen(jumpstarter_pb2.ListenRequest(lease_name=lease)):
                    self.dials.append((ticket.router_endpoint, ticket.router_token))
                    self.dialled.set()
                    self.dialled = anyio.Event()
            except grpc.aio.AioRpcError:
                pass
