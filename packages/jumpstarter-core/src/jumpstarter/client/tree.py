"""Building the tree of driver clients from an exporter's report."""

from __future__ import annotations

import logging
import os
from contextlib import ExitStack
from typing import Any
from uuid import UUID

from jumpstarter.client.base import DriverClient, StubDriverClient
from jumpstarter.client.classes import ClientClassPolicy, UnavailableClass, resolve_client_class
from jumpstarter.client.connection import Connection
from jumpstarter.client.text import printable
from jumpstarter.common.exceptions import DriverConnectionError
from jumpstarter.common.protocol import CLIENT_LABEL, NAME_LABEL
from jumpstarter.v1 import jumpstarter_pb2

logger = logging.getLogger(__name__)


def build_client_tree(connection: Connection, stack: ExitStack, policy: ClientClassPolicy) -> DriverClient:
    """One client per reported driver, wired into the same tree; return the root.

    The report lists the tree depth-first with parents first. A uuid may appear more than
    once (an alias reports its target), so entries are told apart by position.
    """
    reports = list(connection.report.reports)
    if not reports:
        raise DriverConnectionError("the exporter reported no drivers")
    parent_of: list[int | None] = []
    last_position: dict[str, int] = {}
    for position, entry in enumerate(reports):
        if entry.HasField("parent_uuid") and entry.parent_uuid:
            if entry.parent_uuid not in last_position:
                raise DriverConnectionError(
                    f"the exporter's report lists driver {entry.uuid} before its parent {entry.parent_uuid}"
                )
            parent_of.append(last_position[entry.parent_uuid])
        else:
            parent_of.append(None)
        last_position[entry.uuid] = position
    roots = [position for position, parent in enumerate(parent_of) if parent is None]
    if len(roots) != 1:
        raise DriverConnectionError(f"the exporter's report has {len(roots)} root drivers instead of one")

    # Children come after their parent, so building from the end builds every child first;
    # each parent collects its children in reverse, and takes them in order (a later child of
    # the same name wins, in the place of the first).
    children: list[list[tuple[str, DriverClient]]] = [[] for _ in reports]
    clients: dict[int, DriverClient] = {}
    for position in reversed(range(len(reports))):
        entry = reports[position]
        own = dict(reversed(children[position]))
        children[position] = []
        client = _make_client(entry, connection, stack.enter_context(ExitStack()), own, policy)
        clients[position] = client
        parent = parent_of[position]
        if parent is not None:
            children[parent].append((entry.labels.get(NAME_LABEL) or f"driver{position}", client))
    return clients[roots[0]]


def _make_client(
    entry: jumpstarter_pb2.DriverInstanceReport,
    connection: Connection,
    stack: ExitStack,
    children: dict[str, DriverClient],
    policy: ClientClassPolicy,
) -> DriverClient:
    labels = dict(entry.labels)
    fields: dict[str, Any] = {
        "uuid": UUID(entry.uuid),
        "labels": labels,
        "stack": stack,
        "children": children,
        "description": entry.description or None,
        "methods_description": dict(entry.methods_description),
        "connection": connection,
    }
    client_class = resolve_client_class(labels.get(CLIENT_LABEL), policy)
    if isinstance(client_class, UnavailableClass):
        if not os.environ.get("_JMP_SUPPRESS_DRIVER_WARNINGS"):
            name = printable(labels.get(NAME_LABEL, "root"))
            logger.warning(
                "driver %r cannot be used: %s (%s)", name, printable(client_class.reason), printable(client_class.path)
            )
        return StubDriverClient(unavailable=client_class, **fields)
    return client_class(**fields)
