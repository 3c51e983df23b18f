"""`LabClient`: a client's calls to its lab controller (`jumpstarter.client.v1.ClientService` and Dial).

Opened from a client configuration (the files `jmp admin create client` and `jmp config client
create` write): TLS trusting the configuration's CA, and on every call the four metadata keys
the original's clients send (the bearer token, kind, namespace, name). Every refusal becomes a
`LabError` whose message says what is wrong, in one line.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import grpc
from google.protobuf.duration_pb2 import Duration

from jumpstarter.client.endpoint import _aio_interceptors
from jumpstarter.client.text import printable
from jumpstarter.client.v1 import client_pb2, client_pb2_grpc
from jumpstarter.common.calls import cancellable
from jumpstarter.common.exceptions import JumpstarterException
from jumpstarter.config.client import ClientConfig
from jumpstarter.v1 import jumpstarter_pb2, jumpstarter_pb2_grpc

__all__ = ["LabClient", "LabError", "before_lease_hook_failure", "is_ready", "lease_failure"]

# The long poll our controller offers on GetLease (see jumpstarter_controller.client_service).
WAIT_READY_KEY = "jumpstarter-wait-ready"
CALL_TIMEOUT_SECONDS = 30.0
RECONNECT_CAP_MS = 3000


class LabError(JumpstarterException):
    """The lab controller refused a call, or cannot be reached: the message says why, in one line."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.code = code

    @property
    def unreachable(self) -> bool:
        """The controller was not reached, or did not answer: no refusal, nothing it decided."""
        return self.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def is_ready(lease: client_pb2.Lease) -> bool:
    """The original's rule: the last condition is Ready=True."""
    return bool(lease.conditions) and (lease.conditions[-1].type, lease.conditions[-1].status) == ("Ready", "True")


def lease_failure(lease: client_pb2.Lease) -> str | None:
    """Why `lease` will never be ready (unsatisfiable, ended, released); None while it may be."""
    name = lease.name.rsplit("/", 1)[-1]
    for condition in reversed(lease.conditions):
        if condition.type == "Unsatisfiable" and condition.status == "True":
            return f"lease {name} cannot be satisfied: {condition.message or condition.reason}"
        if condition.type == "Ready" and condition.status == "False":
            return f"lease {name} has ended ({condition.reason}: {condition.message})"
    if lease.HasField("effective_end_time"):
        return f"lease {name} has ended"
    return None


def before_lease_hook_failure(lease: client_pb2.Lease) -> str | None:
    """What failed, when the exporter released `lease` because its beforeLease hook failed (our controller
    says so in a condition of its own); None otherwise."""
    for condition in lease.conditions:
        if condition.type == "HookFailed" and condition.status == "True" and condition.reason == "BeforeLeaseHook":
            return condition.message or "the beforeLease hook failed"
    return None


@dataclass
class LabClient:
    namespace: str
    name: str
    endpoint: str
    ca: bytes | None
    channel: grpc.aio.Channel

    def __post_init__(self) -> None:
        self._client = client_pb2_grpc.ClientServiceStub(self.channel)
        self._controller = jumpstarter_pb2_grpc.ControllerServiceStub(self.channel)

    @classmethod
    @asynccontextmanager
    async def open(cls, config: ClientConfig) -> AsyncIterator[LabClient]:
        """A channel to the controller of `config` (which must name its endpoint, token and identity)."""
        if not config.endpoint or not config.token or config.metadata is None:
            raise LabError("the client configuration lacks an endpoint, a token or metadata: jmp config client create")
        ca = base64.b64decode(config.tls.ca) if config.tls.ca else None
        # A controller that was away (restarting, failing over) is tried again within seconds: gRPC's own
        # backoff grows to 2 minutes, longer than the steps in which a lease is held (leasing.HOLD_SECONDS).
        options: list[tuple[str, Any]] = [("grpc.max_reconnect_backoff_ms", RECONNECT_CAP_MS)]
        options += config.grpc_options.items()
        if config.tls.insecure:  # trust what the controller shows (still TLS), as the original does
            ca = (await anyio.to_thread.run_sync(_server_certificate, config.endpoint)).encode()
        credentials = grpc.ssl_channel_credentials(root_certificates=ca)
        namespace, name = config.metadata.namespace, config.metadata.name
        if not namespace or not name:
            raise LabError("the client configuration's metadata lacks its namespace or name: jmp config client create")
        metadata = (
            ("authorization", f"Bearer {config.token}"),
            ("jumpstarter-kind", "Client"),
            ("jumpstarter-namespace", namespace),
            ("jumpstarter-name", name),
        )
        channel = grpc.aio.secure_channel(
            config.endpoint, credentials, options=options, interceptors=_aio_interceptors(metadata)
        )
        try:
            yield cls(namespace, name, config.endpoint, ca, channel)
        finally:
            await channel.close()

    @property
    def parent(self) -> str:
        return f"namespaces/{self.namespace}"

    def lease_path(self, name: str) -> str:
        return name if name.startswith("namespaces/") else f"{self.parent}/leases/{name}"

    async def _call(self, method: Any, request: Any, **kwargs: Any) -> Any:
        try:
            return await cancellable(method(request, timeout=kwargs.pop("timeout", CALL_TIMEOUT_SECONDS), **kwargs))
        except grpc.aio.AioRpcError as error:
            raise self._error(error) from None

    def _error(self, error: grpc.aio.AioRpcError) -> LabError:
        details = printable(error.details() or error.code().name)
        if error.code() == grpc.StatusCode.UNAVAILABLE:
            if "CERTIFICATE_VERIFY_FAILED" in details:
                details = "its TLS certificate is not signed by the CA of the client configuration (tls.ca)"
            return LabError(f"cannot reach the lab controller at {self.endpoint}: {details}", error.code())
        if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            return LabError(f"the lab controller at {self.endpoint} did not answer in time", error.code())
        return LabError(details, error.code())

    # -- leases ------------------------------------------------------------------------------

    async def create_lease(
        self, selector: str, duration: float, *, exporter_name: str = "", lease_id: str = ""
    ) -> client_pb2.Lease:
        lease = client_pb2.Lease(selector=selector, duration=_duration(duration))
        if exporter_name:
            lease.exporter_name = exporter_name
        request = client_pb2.CreateLeaseRequest(parent=self.parent, lease=lease, lease_id=lease_id)
        created: client_pb2.Lease = await self._call(self._client.CreateLease, request)
        return created

    async def get_lease(self, name: str) -> client_pb2.Lease:
        lease: client_pb2.Lease = await self._call(
            self._client.GetLease, client_pb2.GetLeaseRequest(name=self.lease_path(name))
        )
        return lease

    async def wait_lease(self, name: str, seconds: float) -> tuple[client_pb2.Lease, bool]:
        """GetLease, asking our controller to answer once the lease is ready or ended (within `seconds`).

        The second value says whether the controller waited (ours does; the original answers at once).
        """
        call = self._client.GetLease(
            client_pb2.GetLeaseRequest(name=self.lease_path(name)),
            metadata=((WAIT_READY_KEY, f"{seconds:g}"),),
            timeout=seconds + CALL_TIMEOUT_SECONDS,
        )
        try:
            lease: client_pb2.Lease = await cancellable(call)
            waited = any(key == WAIT_READY_KEY for key, _ in (await cancellable(call.initial_metadata())) or ())
        except grpc.aio.AioRpcError as error:
            raise self._error(error) from None
        return lease, waited

    async def list_leases(self, filter: str = "", *, only_active: bool = True) -> list[client_pb2.Lease]:
        leases: list[client_pb2.Lease] = []
        token = ""
        while True:
            request = client_pb2.ListLeasesRequest(
                parent=self.parent, filter=filter, page_token=token, only_active=only_active
            )
            response = await self._call(self._client.ListLeases, request)
            leases.extend(response.leases)
            token = response.next_page_token
            if not token:
                return leases

    async def update_lease(self, name: str, duration: float) -> client_pb2.Lease:
        lease = client_pb2.Lease(name=self.lease_path(name), duration=_duration(duration))
        updated: client_pb2.Lease = await self._call(
            self._client.UpdateLease, client_pb2.UpdateLeaseRequest(lease=lease)
        )
        return updated

    async def delete_lease(self, name: str) -> None:
        await self._call(self._client.DeleteLease, client_pb2.DeleteLeaseRequest(name=self.lease_path(name)))

    # -- exporters ---------------------------------------------------------------------------

    async def list_exporters(self, filter: str = "") -> list[client_pb2.Exporter]:
        exporters: list[client_pb2.Exporter] = []
        token = ""
        while True:
            request = client_pb2.ListExportersRequest(parent=self.parent, filter=filter, page_token=token)
            response = await self._call(self._client.ListExporters, request)
            exporters.extend(response.exporters)
            token = response.next_page_token
            if not token:
                return exporters

    async def get_exporter(self, name: str) -> client_pb2.Exporter:
        exporter: client_pb2.Exporter = await self._call(
            self._client.GetExporter, client_pb2.GetExporterRequest(name=f"{self.parent}/exporters/{name}")
        )
        return exporter

    async def dial(self, lease_name: str) -> tuple[str, str]:
        """The router endpoint and stream token for one new connection to the lease's exporter."""
        bare = lease_name.rsplit("/", 1)[-1]
        response = await self._call(self._controller.Dial, jumpstarter_pb2.DialRequest(lease_name=bare))
        return response.router_endpoint, response.router_token


def _duration(seconds: float) -> Duration:
    whole = int(seconds)
    return Duration(seconds=whole, nanos=round((seconds - whole) * 1e9))


def _server_certificate(endpoint: str) -> str:
    host, _, port = endpoint.rpartition(":")
    return ssl.get_server_certificate((host.strip("[]"), int(port)))
