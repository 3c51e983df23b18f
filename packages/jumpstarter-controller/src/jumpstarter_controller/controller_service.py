"""`jumpstarter.v1.ControllerService`: exporters register, report and listen; clients dial."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import anyio
import grpc

from jumpstarter.v1 import common_pb2, jumpstarter_pb2, jumpstarter_pb2_grpc, kubernetes_pb2
from jumpstarter_controller._calls import abort, identify, refuse
from jumpstarter_controller.controller import Controller, ListenTicket
from jumpstarter_controller.convert import condition, duration, seconds, timestamp
from jumpstarter_controller.credentials import Identity
from jumpstarter_controller.leases import LeaseRequest, RequestError, create_lease, release_by_exporter, release_lease
from jumpstarter_controller.model import STATUS_AVAILABLE, STATUS_OFFLINE, Exporter
from jumpstarter_controller.scheduler import Event
from jumpstarter_controller.selectors import InvalidSelector, validate_labels

logger = logging.getLogger(__name__)

# The Status stream refreshes last_seen this often (the original's 10 s).
STATUS_REFRESH_SECONDS = 10.0
# How long Dial waits server-side for an exporter that is not ready yet (the original's 30 s).
DIAL_WAIT_SECONDS = 30.0
RESERVED_PREFIX = "jumpstarter.dev/"
MAX_REPORTS = 1000
# A status message: a line, and the tail of a lease hook's output (up to 4 KiB) that our exporter adds.
MAX_STATUS_MESSAGE = 6000
READY_STATUSES = (0, 3, 4, 5)  # unspecified, before-lease hook, lease ready, after-lease hook
_FAILED = {6: "exporter beforeLease hook failed", 7: "exporter afterLease hook failed"}
_STATUS_NAMES = {s: n.removeprefix("EXPORTER_STATUS_").title().replace("_", "")
                 for n, s in common_pb2.ExporterStatus.items()}  # fmt: skip

Mint = Callable[[tuple[str, str], Exporter], tuple[str, str]]


class ControllerService(jumpstarter_pb2_grpc.ControllerServiceServicer):
    def __init__(self, controller: Controller, mint: Mint) -> None:
        self.controller = controller
        self._mint = mint  # (lease key, exporter) -> (router endpoint, router token)

    def _exporter(self, identity: Identity) -> Exporter:
        return self.controller.model.exporters[(identity.namespace, identity.name)]

    async def Register(self, request: Any, context: Any) -> Any:
        identity = await identify(self.controller, context, "exporter")
        labels = {k: v for k, v in request.labels.items() if k.startswith(RESERVED_PREFIX)}
        try:
            validate_labels(labels)
        except InvalidSelector as error:
            await abort(context, "INVALID_ARGUMENT", str(error))
        if len(request.reports) > MAX_REPORTS:
            await abort(context, "INVALID_ARGUMENT", f"at most {MAX_REPORTS} driver reports are accepted")
        devices = [{"uuid": r.uuid, "parent_uuid": r.parent_uuid, "labels": dict(r.labels)} for r in request.reports]
        async with self.controller.change() as changes:
            exporter = self._exporter(identity)
            kept = {k: v for k, v in exporter.labels.items() if not k.startswith(RESERVED_PREFIX)}
            exporter.labels = {**kept, **labels}
            exporter.devices = devices
            exporter.last_seen = time.time()
            exporter.ack_pending = False  # a new process: it holds no lease context
            changes.exporter(exporter)
            changes.event(Event(f"exporter:{identity.name}", "exporter registered", identity.namespace,
                                exporter=identity.name, why=f"{len(devices)} driver reports"))  # fmt: skip
        return jumpstarter_pb2.RegisterResponse(uuid=exporter.uuid)

    async def Unregister(self, request: Any, context: Any) -> Any:
        identity = await identify(self.controller, context, "exporter")
        async with self.controller.change() as changes:
            exporter = self._exporter(identity)
            exporter.devices = None
            exporter.status = STATUS_OFFLINE
            changes.exporter(exporter)
            changes.event(Event(f"exporter:{identity.name}", "exporter unregistered", identity.namespace,
                                exporter=identity.name, why=request.reason[:1000]))  # fmt: skip
        return jumpstarter_pb2.UnregisterResponse()

    async def ReportStatus(self, request: Any, context: Any) -> Any:
        identity = await identify(self.controller, context, "exporter")
        release = None
        async with self.controller.change() as changes:
            exporter = self._exporter(identity)
            previous = exporter.status
            exporter.status = int(request.status)
            exporter.status_message = request.message[:MAX_STATUS_MESSAGE]
            exporter.last_seen = time.time()
            if exporter.status == STATUS_AVAILABLE and exporter.lease is None and exporter.notice_sent:
                exporter.ack_pending = False
            if exporter.lease is not None:
                was_busy = previous not in (0, STATUS_AVAILABLE) or exporter.done_with_lease
                exporter.done_with_lease = exporter.status == STATUS_AVAILABLE and was_busy
            if request.release_lease and exporter.lease is not None:
                release = exporter.lease
            changes.exporter(exporter)
            if previous != exporter.status:
                changes.event(Event(f"exporter:{identity.name}", "exporter status", identity.namespace,
                                    exporter=identity.name,
                                    why=f"{_STATUS_NAMES.get(exporter.status, exporter.status)}: "
                                    f"{exporter.status_message}"))  # fmt: skip
        if release is not None:
            try:
                await release_by_exporter(self.controller, identity, release)
            except RequestError as error:
                await refuse(context, error)
        return jumpstarter_pb2.ReportStatusResponse()

    async def Status(self, request: Any, context: Any) -> None:
        identity = await identify(self.controller, context, "exporter")
        key = (identity.namespace, identity.name)
        async with self.controller.change() as changes:
            exporter = self._exporter(identity)
            exporter.streams += 1
            exporter.last_seen = time.time()
            if exporter.status == STATUS_OFFLINE:
                exporter.status = 0  # back: its next report says how it is
            changes.exporter(exporter)
        sent: tuple[bool, str, str] | None = None
        try:
            while True:
                exporter_now = self.controller.model.exporters.get(key)
                if exporter_now is None or exporter_now.token_version != identity.version:
                    await abort(context, "UNKNOWN", "this exporter was deleted or its token rotated")
                exporter = exporter_now
                lease = self.controller.model.leases.get((identity.namespace, exporter.lease or ""))
                wanted = (True, lease.name, lease.client) if lease is not None else (False, "", "")
                if wanted != sent:
                    if wanted[0]:
                        assert lease is not None
                        response = jumpstarter_pb2.StatusResponse(
                            leased=True, lease_name=lease.name, client_name=lease.client, context=lease.context
                        )
                    else:
                        response = jumpstarter_pb2.StatusResponse(leased=False)
                    await context.write(response)
                    sent = wanted
                    if not wanted[0] and exporter.ack_pending and not exporter.notice_sent:
                        # Marked at once (no await before it): the exporter's AVAILABLE, which it sends on
                        # reading this, must find it marked. Written to the database afterwards.
                        exporter.notice_sent = True
                        async with self.controller.change() as changes:
                            # The original's exporter may have reported AVAILABLE already (after its client's
                            # EndSession and its afterLease hook) and then does not report it again.
                            if exporter.status == STATUS_AVAILABLE and exporter.done_with_lease:
                                exporter.ack_pending = False
                            changes.exporter(exporter)
                await self.controller.wait_exporter(key, STATUS_REFRESH_SECONDS)
                exporter.last_seen = time.time()
        finally:
            with anyio.CancelScope(shield=True):
                exporter_left = self.controller.model.exporters.get(key)
                if exporter_left is not None:
                    exporter_left.streams = max(0, exporter_left.streams - 1)
                    try:
                        async with self.controller.change() as changes:
                            changes.exporter(exporter_left)
                    except Exception:
                        if self.controller.stopping:  # its streams end with the controller: nothing to record
                            logger.debug("exporter %s/%s left as the controller stopped", *key)
                        else:
                            logger.exception("cannot record that exporter %s/%s left", *key)

    async def Listen(self, request: Any, context: Any) -> None:
        identity = await identify(self.controller, context, "exporter")
        key = (identity.namespace, request.lease_name)
        lease = self.controller.model.leases.get(key)
        if lease is None or lease.ended or lease.exporter != identity.name:
            await abort(context, "UNKNOWN", "permission denied: this exporter does not hold that lease")
        receive, scope = self.controller.open_listener(key)
        self.controller.notify_exporter((identity.namespace, identity.name))
        try:
            with scope, receive:
                async for ticket in receive:
                    await context.write(
                        jumpstarter_pb2.ListenResponse(
                            router_endpoint=ticket.router_endpoint, router_token=ticket.router_token
                        )
                    )
        finally:
            self.controller.close_listener(key, scope)

    async def Dial(self, request: Any, context: Any) -> Any:
        identity = await identify(self.controller, context, "client")
        key = (identity.namespace, request.lease_name)
        deadline = time.monotonic() + DIAL_WAIT_SECONDS
        while True:
            lease = self.controller.model.leases.get(key)
            if lease is None or lease.client != identity.name:
                await abort(context, "UNKNOWN", "permission denied: the lease is not yours")
            if lease.ended or lease.exporter is None:
                await abort(context, "UNKNOWN", f"lease not active: lease {lease.name} has no exporter")
            exporter = self.controller.model.exporters.get((identity.namespace, lease.exporter))
            if exporter is None or not exporter.online:
                await abort(context, "FAILED_PRECONDITION", "exporter is offline")
            if exporter.status in _FAILED:
                await abort(context, "FAILED_PRECONDITION", _FAILED[exporter.status])
            ready = exporter.status in READY_STATUSES and self.controller.has_listener(key)
            if ready:
                break
            if exporter.status not in (*READY_STATUSES, STATUS_AVAILABLE):
                name = _STATUS_NAMES.get(exporter.status, str(exporter.status))
                await abort(context, "FAILED_PRECONDITION", f"exporter not ready (status: {name})")
            left = deadline - time.monotonic()
            if left <= 0:
                name = _STATUS_NAMES.get(exporter.status, str(exporter.status))
                await abort(context, "FAILED_PRECONDITION", f"exporter is not ready (status: {name})")
            await self.controller.wait_exporter(exporter.key, min(left, 1.0))
        endpoint, token = self._mint(key, exporter)
        if not self.controller.deliver(key, ListenTicket(endpoint, token)):
            await abort(
                context, "UNAVAILABLE", f"exporter is not listening on lease {lease.name} (or its buffer is full)"
            )
        return jumpstarter_pb2.DialResponse(router_endpoint=endpoint, router_token=token)

    async def ReleaseLease(self, request: Any, context: Any) -> Any:
        identity = await identify(self.controller, context, None)
        try:
            if identity.kind == "exporter":
                await release_by_exporter(self.controller, identity, request.name)
            elif identity.kind == "client":
                lease = self.controller.model.leases.get((identity.namespace, request.name))
                if lease is None or not (lease.released or lease.ended):
                    await release_lease(self.controller, identity, request.name)
            else:
                await abort(context, "PERMISSION_DENIED", "ReleaseLease is for clients and exporters")
        except RequestError as error:
            await refuse(context, error)
        return jumpstarter_pb2.ReleaseLeaseResponse()

    # -- the legacy client API -------------------------------------------------------------------

    async def GetLease(self, request: Any, context: Any) -> Any:
        identity = await identify(self.controller, context, "client")
        lease = self.controller.model.leases.get((identity.namespace, request.name))
        if lease is None or lease.client != identity.name:
            await abort(context, "NOT_FOUND", f"there is no lease {request.name} of yours")
        from jumpstarter_controller.selectors import parse

        selector = kubernetes_pb2.LabelSelector()
        for requirement in parse(lease.selector).requirements:
            if requirement.op == "=":
                selector.match_labels[requirement.key] = requirement.values[0]
            else:
                operator = {"in": "In", "notin": "NotIn", "exists": "Exists", "!exists": "DoesNotExist"}
                selector.match_expressions.add(
                    key=requirement.key, operator=operator[requirement.op], values=requirement.values
                )
        response = jumpstarter_pb2.GetLeaseResponse(
            selector=selector, conditions=[condition(c) for c in lease.conditions]
        )
        if lease.duration is not None:
            response.duration.CopyFrom(duration(lease.duration))
        if lease.effective_begin is not None:
            response.begin_time.CopyFrom(timestamp(lease.effective_begin))
        if lease.effective_end is not None:
            response.end_time.CopyFrom(timestamp(lease.effective_end))
        if lease.exporter:
            exporter = self.controller.model.exporters.get((lease.namespace, lease.exporter))
            if exporter is not None:
                response.exporter_uuid = exporter.uuid
        return response

    async def RequestLease(self, request: Any, context: Any) -> Any:
        identity = await identify(self.controller, context, "client")
        parts = [f"{k}={v}" for k, v in request.selector.match_labels.items()]
        operators = {"In": "in", "NotIn": "notin"}
        for e in request.selector.match_expressions:
            if e.operator in operators:
                parts.append(f"{e.key} {operators[e.operator]} ({','.join(e.values)})")
            elif e.operator == "Exists":
                parts.append(e.key)
            elif e.operator == "DoesNotExist":
                parts.append(f"!{e.key}")
            else:
                await abort(context, "UNKNOWN", f"InvalidSelector: unknown operator {e.operator!r}")
        wanted = LeaseRequest(
            selector=",".join(parts), duration=seconds(request.duration) if request.HasField("duration") else None
        )
        try:
            lease = await create_lease(self.controller, identity, wanted)
        except RequestError as error:
            await refuse(context, error)
        return jumpstarter_pb2.RequestLeaseResponse(name=lease.name)

    async def ListLeases(self, request: Any, context: Any) -> Any:
        identity = await identify(self.controller, context, "client")
        names = [
            lease.name
            for lease in self.controller.model.active_leases()
            if lease.namespace == identity.namespace and lease.client == identity.name
        ]
        return jumpstarter_pb2.ListLeasesResponse(names=names)

    async def GetServiceEndpoints(self, request: Any, context: Any) -> Any:
        await identify(self.controller, context, None)
        return jumpstarter_pb2.GetServiceEndpointsResponse()


def add_controller_service(server: grpc.aio.Server, service: ControllerService) -> None:
    jumpstarter_pb2_grpc.add_ControllerServiceServicer_to_server(service, server)
