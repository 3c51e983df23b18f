"""`jumpstarter.client.v1.ClientService`: exporters and leases of the caller's namespace."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import anyio
import grpc
from google.protobuf.empty_pb2 import Empty

from jumpstarter.client.v1 import client_pb2, client_pb2_grpc
from jumpstarter_controller._calls import abort, identify, refuse
from jumpstarter_controller.controller import Controller
from jumpstarter_controller.convert import exporter_message, lease_message, seconds, timestamp
from jumpstarter_controller.credentials import Identity
from jumpstarter_controller.leases import (
    TAG_PREFIX,
    LeaseRequest,
    LeaseUpdate,
    RequestError,
    create_lease,
    lease_labels,
    release_lease,
    update_lease,
)
from jumpstarter_controller.model import Lease
from jumpstarter_controller.names import BadName, parse_resource
from jumpstarter_controller.scheduler import Changes
from jumpstarter_controller.selectors import InvalidSelector, Selector, parse

T = TypeVar("T")
MAX_PAGE = 1000

Rotate = Callable[[Identity], tuple[str, float]]

# Our clients' long poll (the original's poll GetLease every 5 s): with this request metadata
# key, GetLease waits up to that many seconds (at most WAIT_LIMIT_SECONDS) until the lease is
# ready or has ended, and says that it waited by sending the key back in its initial
# metadata. The original's controller ignores the key and answers at once, which our client
# takes as the sign to poll.
WAIT_READY_KEY = "jumpstarter-wait-ready"
WAIT_LIMIT_SECONDS = 30.0


class ClientService(client_pb2_grpc.ClientServiceServicer):
    def __init__(self, controller: Controller, rotate: Rotate) -> None:
        self.controller = controller
        self._rotate = rotate
        # Set (and dropped) when a lease changes: what GetLease's long poll waits for.
        self._lease_changed: dict[tuple[str, str], anyio.Event] = {}
        controller.watchers.append(self._on_changes)

    def _on_changes(self, changes: Changes) -> None:
        for key in changes.leases:
            event = self._lease_changed.pop(key, None)
            if event is not None:
                event.set()

    async def _names(self, context: Any, text: str, kind: str | None) -> tuple[Identity, str]:
        identity = await identify(self.controller, context, "client")
        try:
            namespace, name = parse_resource(text, kind)
        except BadName as error:
            await abort(context, "INVALID_ARGUMENT", str(error))
        if namespace != identity.namespace:
            await abort(context, "PERMISSION_DENIED", f"namespace mismatch: your client is in {identity.namespace}")
        return identity, name

    async def _selector(self, context: Any, text: str, what: str) -> Selector:
        try:
            return parse(text)
        except InvalidSelector as error:
            await abort(context, "INVALID_ARGUMENT", f"{what}: {error}")

    async def GetExporter(self, request: Any, context: Any) -> Any:
        identity, name = await self._names(context, request.name, "exporters")
        exporter = self.controller.model.exporters.get((identity.namespace, name))
        if exporter is None:
            await abort(context, "NOT_FOUND", f"there is no exporter {name} in namespace {identity.namespace}")
        return exporter_message(exporter)

    async def ListExporters(self, request: Any, context: Any) -> Any:
        identity, _ = await self._names(context, request.parent, None)
        selector = await self._selector(context, request.filter, "filter")
        exporters = sorted(
            (
                e
                for e in self.controller.model.exporters.values()
                if e.namespace == identity.namespace and selector.matches(e.labels)
            ),
            key=lambda e: e.name,
        )
        page, token = await _page(context, exporters, lambda e: e.name, request.page_size, request.page_token)
        return client_pb2.ListExportersResponse(exporters=[exporter_message(e) for e in page], next_page_token=token)

    async def GetLease(self, request: Any, context: Any) -> Any:
        identity, name = await self._names(context, request.name, "leases")
        key = (identity.namespace, name)
        lease = self.controller.model.leases.get(key)
        if lease is None:
            await abort(context, "NOT_FOUND", f"there is no lease {name} in namespace {identity.namespace}")
        wait = _wait_seconds(context.invocation_metadata())
        if wait is not None:
            await context.send_initial_metadata(((WAIT_READY_KEY, "1"),))
            deadline = time.monotonic() + wait
            while not _settled(lease) and (left := deadline - time.monotonic()) > 0:
                changed = self._lease_changed.setdefault(key, anyio.Event())
                with anyio.move_on_after(left):
                    await changed.wait()
                lease = self.controller.model.leases.get(key)
                if lease is None:  # the model was reloaded without it
                    await abort(context, "NOT_FOUND", f"there is no lease {name} in namespace {identity.namespace}")
        return lease_message(lease)

    async def ListLeases(self, request: Any, context: Any) -> Any:
        identity, _ = await self._names(context, request.parent, None)
        selector = await self._selector(context, request.filter, "filter")
        tags = await self._selector(context, request.tag_filter, "tag_filter")
        only_active = request.only_active if request.HasField("only_active") else True
        leases = sorted(
            (
                lease
                for lease in self.controller.model.leases.values()
                if lease.namespace == identity.namespace
                and not (only_active and lease.ended)
                and selector.matches(lease_labels(lease))
                and tags.matches(lease.tags)
            ),
            key=lambda lease: (lease.seq, lease.name),
        )
        page, token = await _page(context, leases, lambda lease: f"{lease.seq:012d}", request.page_size,
                                  request.page_token)  # fmt: skip
        return client_pb2.ListLeasesResponse(leases=[lease_message(x) for x in page], next_page_token=token)

    async def CreateLease(self, request: Any, context: Any) -> Any:
        identity, _ = await self._names(context, request.parent, None)
        lease = request.lease
        wanted = LeaseRequest(
            selector=lease.selector,
            exporter_name=lease.exporter_name,
            duration=seconds(lease.duration) if lease.HasField("duration") else None,
            begin_time=seconds(lease.begin_time) if lease.HasField("begin_time") else None,
            end_time=seconds(lease.end_time) if lease.HasField("end_time") else None,
            tags=dict(lease.tags),
            context=dict(lease.context),
            allow_disabled=lease.allow_disabled,
            lease_id=request.lease_id,
        )
        if any(key.startswith(TAG_PREFIX) for key in wanted.tags):
            await abort(context, "INVALID_ARGUMENT", f"tag keys must not start with {TAG_PREFIX}")
        try:
            created = await create_lease(self.controller, identity, wanted)
        except RequestError as error:
            await refuse(context, error)
        return lease_message(created)

    async def UpdateLease(self, request: Any, context: Any) -> Any:
        lease = request.lease
        identity, name = await self._names(context, lease.name, "leases")
        # The original decides by presence in `lease`, not by update_mask.
        update = LeaseUpdate(
            duration=seconds(lease.duration) if lease.HasField("duration") else None,
            begin_time=seconds(lease.begin_time) if lease.HasField("begin_time") else None,
            end_time=seconds(lease.end_time) if lease.HasField("end_time") else None,
            client=lease.client if lease.HasField("client") and lease.client else None,
        )
        try:
            updated = await update_lease(self.controller, identity, name, update)
        except RequestError as error:
            await refuse(context, error)
        return lease_message(updated)

    async def DeleteLease(self, request: Any, context: Any) -> Any:
        identity, name = await self._names(context, request.name, "leases")
        try:
            await release_lease(self.controller, identity, name)
        except RequestError as error:
            await refuse(context, error)
        return Empty()

    async def RotateToken(self, request: Any, context: Any) -> Any:
        identity, _ = await self._names(context, request.parent, None)
        version = await self.controller.rotate("client", identity.namespace, identity.name, f"client:{identity.name}")
        token, expiry = self._rotate(Identity("client", identity.namespace, identity.name, version))
        return client_pb2.RotateTokenResponse(token=token, expiry=timestamp(expiry))


def _wait_seconds(metadata: Any) -> float | None:
    """The long poll's bound that the call asks for (None: answer at once)."""
    for key, value in metadata or ():
        if key == WAIT_READY_KEY:
            try:
                seconds = float(value)
            except ValueError:
                return None
            return min(max(seconds, 0.0), WAIT_LIMIT_SECONDS) if seconds == seconds else None
    return None


def _settled(lease: Lease) -> bool:
    """Whether a client waiting for `lease` has its answer: it is ready, or it has ended."""
    ready = lease.condition("Ready")
    return lease.ended or (ready is not None and ready.status == "True")


async def _page(
    context: Any, items: Sequence[T], key: Callable[[T], str], size: int, token: str
) -> tuple[list[T], str]:
    """One page after the item whose key the token holds; the token of the next page ("" at the end)."""
    if size < 0:
        await abort(context, "INVALID_ARGUMENT", "page_size must not be negative")
    after = ""
    if token:
        try:
            after = base64.urlsafe_b64decode(token.encode()).decode()
        except ValueError:
            await abort(context, "INVALID_ARGUMENT", "page_token is not one this controller gave")
    start = next((i for i, item in enumerate(items) if key(item) > after), len(items)) if after else 0
    size = min(size or MAX_PAGE, MAX_PAGE)
    page = list(items[start : start + size])
    more = start + size < len(items)
    return page, base64.urlsafe_b64encode(key(page[-1]).encode()).decode() if more and page else ""


def add_client_service(server: grpc.aio.Server, service: ClientService) -> None:
    client_pb2_grpc.add_ClientServiceServicer_to_server(service, server)
