"""Between the model and the wire: times, conditions, `Exporter` and `Lease` messages."""

from __future__ import annotations

import time

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from jumpstarter.client.v1 import client_pb2
from jumpstarter.v1 import kubernetes_pb2
from jumpstarter_controller.model import STATUS_OFFLINE, Condition, Exporter, Lease
from jumpstarter_controller.names import resource

HIDDEN_PREFIXES = ()


def timestamp(seconds: float) -> Timestamp:
    whole = int(seconds // 1)
    return Timestamp(seconds=whole, nanos=int((seconds - whole) * 1e9))


def duration(seconds: float) -> Duration:
    whole = int(seconds // 1)
    return Duration(seconds=whole, nanos=int((seconds - whole) * 1e9))


def seconds(value: Timestamp | Duration) -> float:
    return value.seconds + value.nanos / 1e9


def condition(c: Condition) -> kubernetes_pb2.Condition:
    whole = int(c.time // 1)
    return kubernetes_pb2.Condition(
        type=c.type, status=c.status, observedGeneration=1, reason=c.reason, message=c.message,
        lastTransitionTime=kubernetes_pb2.Time(seconds=whole, nanos=int((c.time - whole) * 1e9)),
    )  # fmt: skip


def exporter_message(exporter: Exporter) -> client_pb2.Exporter:
    return client_pb2.Exporter(
        name=resource(exporter.namespace, "exporters", exporter.name),
        labels=exporter.labels,
        online=exporter.online,
        status=exporter.status if exporter.online else STATUS_OFFLINE,  # type: ignore[arg-type]
        status_message=exporter.status_message if exporter.online else "offline: not connected to the controller",
        enabled=exporter.enabled,  # always sent: an absent value reads as true
    )


def lease_message(lease: Lease) -> client_pb2.Lease:
    message = client_pb2.Lease(
        name=resource(lease.namespace, "leases", lease.name),
        selector=lease.selector,
        client=resource(lease.namespace, "clients", lease.client),
        conditions=[condition(c) for c in lease.conditions],
        tags=lease.tags,
        context=lease.context,
        allow_disabled=lease.allow_disabled,
    )
    if lease.duration is not None:
        message.duration.CopyFrom(duration(lease.duration))
    if lease.begin_time is not None:
        message.begin_time.CopyFrom(timestamp(lease.begin_time))
    if lease.end_time is not None:
        message.end_time.CopyFrom(timestamp(lease.end_time))
    if lease.effective_begin is not None:
        message.effective_begin_time.CopyFrom(timestamp(lease.effective_begin))
        end = lease.effective_end if lease.effective_end is not None else time.time()
        message.effective_duration.CopyFrom(duration(max(0.0, end - lease.effective_begin)))
    if lease.effective_end is not None:
        message.effective_end_time.CopyFrom(timestamp(lease.effective_end))
    if lease.exporter:
        message.exporter = resource(lease.namespace, "exporters", lease.exporter)
    if lease.exporter_name:
        message.exporter_name = lease.exporter_name
    return message
