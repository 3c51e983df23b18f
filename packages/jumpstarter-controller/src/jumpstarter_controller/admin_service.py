"""The admin service: JSON requests over gRPC on the controller's port, for `jmp admin`.

One unary method, ``/jumpstarter_controller.Admin/Call``: the request is a JSON object
``{"op": ..., ...}`` and the answer a JSON value; a refusal is a gRPC status with a
one-line text. Only the admin credential (the state directory's ``admin.token``) may call it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import grpc

from jumpstarter_controller._calls import abort, identify
from jumpstarter_controller.controller import Controller
from jumpstarter_controller.convert import exporter_message
from jumpstarter_controller.credentials import Identity
from jumpstarter_controller.names import BadName, check_name
from jumpstarter_controller.scheduler import Event
from jumpstarter_controller.selectors import InvalidSelector, validate_labels

METHOD = "/jumpstarter_controller.Admin/Call"
MAX_REQUEST = 64 * 1024
MAX_LABELS = 64

Mint = Callable[[Identity], tuple[str, float]]


class AdminService:
    def __init__(self, controller: Controller, mint: Mint, login_link: Callable[[], str | None] = lambda: None) -> None:
        self.controller = controller
        self._mint = mint
        self._login_link = login_link
        """A one-time dashboard login link (None without a dashboard): `jmp admin dashboard-login`."""
        self.describe_peer: Callable[[str], str] = str
        """The TCP peer behind gRPC's name of a call's connection (the controller's gate sets it)."""

    async def call(self, request: bytes, context: Any) -> bytes:
        identity = await identify(self.controller, context, "admin")
        if len(request) > MAX_REQUEST:
            await abort(context, "INVALID_ARGUMENT", "the request is too large")
        try:
            data = json.loads(request)
            op = str(data["op"])
        except (ValueError, KeyError, TypeError):
            await abort(context, "INVALID_ARGUMENT", "the request is not a JSON object with an op")
        who = f"admin:{identity.name}"
        try:
            if op == "dashboard_login":
                where = self.describe_peer(context.peer())
                result = await self._dashboard_login(who, where, str(data.get("via", "remote")))
            else:
                result = await self._run(op, data, who)
        except (BadName, InvalidSelector) as error:
            await abort(context, "INVALID_ARGUMENT", str(error))
        except LookupError as error:
            await abort(context, "NOT_FOUND", str(error.args[0]))
        except ValueError as error:
            await abort(context, "ALREADY_EXISTS", str(error))
        return json.dumps(result).encode()

    async def _run(self, op: str, data: dict[str, Any], who: str) -> Any:
        controller = self.controller
        model = controller.model
        namespace = check_name(str(data.get("namespace", "default")), "namespace")
        if op in ("create_client", "create_exporter"):
            kind = op.removeprefix("create_")
            name = check_name(str(data["name"]), kind)
            labels = {str(k): str(v) for k, v in dict(data.get("labels", {})).items()}
            if len(labels) > MAX_LABELS:
                raise InvalidSelector(f"at most {MAX_LABELS} labels, {len(labels)} were given")
            validate_labels(labels)
            if kind == "client":
                record: Any = await controller.create_client(namespace, name, labels, who)
            else:
                record = await controller.create_exporter(namespace, name, labels, who)
            token, _ = self._mint(Identity(kind, namespace, name, record.token_version))
            return {"token": token}
        if op in ("rotate_client", "rotate_exporter"):
            kind = op.removeprefix("rotate_")
            name = check_name(str(data["name"]), kind)
            version = await controller.rotate(kind, namespace, name, who)
            token, _ = self._mint(Identity(kind, namespace, name, version))
            return {"token": token}
        if op in ("delete_client", "delete_exporter"):
            kind = op.removeprefix("delete_")
            await controller.delete(kind, namespace, check_name(str(data["name"]), kind), who)
            return {}
        if op in ("enable_exporter", "disable_exporter"):
            name = check_name(str(data["name"]), "exporter")
            changed = await controller.set_enabled(namespace, name, op == "enable_exporter", who, "jmp admin")
            return {"changed": changed}
        if op == "get_clients":
            return [{"namespace": c.namespace, "name": c.name, "labels": c.labels} for c in model.clients.values()]
        if op == "get_exporters":
            return [
                {
                    "namespace": e.namespace,
                    "name": e.name,
                    "labels": e.labels,
                    "enabled": e.enabled,
                    "online": e.online,
                    "registered": e.devices is not None,
                    "status": exporter_message(e).status,
                    "lease": e.lease,
                }
                for e in model.exporters.values()
            ]
        if op == "get_leases":
            return [
                {
                    "namespace": lease.namespace,
                    "name": lease.name,
                    "client": lease.client,
                    "selector": lease.selector,
                    "exporter": lease.exporter,
                    "ended": lease.ended,
                    "conditions": [c.as_dict() for c in lease.conditions],
                }
                for lease in sorted(model.leases.values(), key=lambda x: x.seq)
                if data.get("all") or not lease.ended
            ]
        if op == "get_events":
            return await controller.store.events(int(data.get("limit", 1000)))
        raise LookupError(f"unknown admin operation {op!r}")

    async def _dashboard_login(self, who: str, peer: str, via: str) -> dict[str, str]:
        """A one-time admin login link; the event log says who asked for it, from where."""
        link = self._login_link()
        if link is None:
            raise LookupError("this controller serves no dashboard: start jmp controller run without "
                              "--no-dashboard")  # fmt: skip
        how = "on the controller's host" if via == "local" else "with --endpoint"
        async with self.controller.change() as changes:
            changes.event(Event(who, "dashboard login link", why=f"jmp admin dashboard-login {how}, from {peer}: "
                                "one admin session, if used within 2 minutes"))  # fmt: skip
        return {"link": link}


def add_admin_service(server: grpc.aio.Server, service: AdminService) -> None:
    handler: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(service.call)  # raw bytes
    service_name, method = METHOD.strip("/").split("/")
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(service_name, {method: handler})])
