"""Waiting, through a lease's tunnel, until its exporter is ready for the client (LEASE_READY).

A lease is ready at the controller as soon as an exporter is assigned; the exporter then
builds its drivers and runs its beforeLease hook (BEFORE_LEASE_HOOK) before it reports
LEASE_READY. A command run before that would race the hook, so the client asks the exporter
(GetStatus, through the tunnel) until it is ready:

- our exporters answer a GetStatus that names the version already seen once the status has
  moved on (`jumpstarter.common.protocol.STATUS_AFTER_METADATA_KEY`): no polling, and no
  status missed, not even a BEFORE_LEASE_HOOK_FAILED that lasts a millisecond;
- other exporters answer at once: they are asked every POLL_SECONDS;
- an exporter without GetStatus (UNIMPLEMENTED: older than the status protocol) is ready.

When the tunnel cannot reach the exporter (the controller refuses to Dial an exporter whose
hook failed, or the exporter ended the lease), the controller says why: the lease's end, or
the exporter's status. The caller bounds the whole wait (by the lease's life).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import anyio
import grpc

from jumpstarter.client.endpoint import ExporterEndpoint
from jumpstarter.client.lab import LabClient, LabError, before_lease_hook_failure, lease_failure
from jumpstarter.client.text import printable
from jumpstarter.common.calls import cancellable
from jumpstarter.common.protocol import STATUS_AFTER_METADATA_KEY, STATUS_WAIT_SECONDS
from jumpstarter.v1 import common_pb2, jumpstarter_pb2, jumpstarter_pb2_grpc

if TYPE_CHECKING:
    from jumpstarter.client.v1 import client_pb2

__all__ = ["HookFailed", "ended_error", "wait_until_ready"]

POLL_SECONDS = 0.1
# How long the exporter may stay unreachable through the tunnel, with no reason from the controller.
UNREACHABLE_SECONDS = 30.0
ANSWER_SECONDS = 10.0

# UNSPECIFIED: an exporter that reports no status (the controller lets such legacy exporters be dialled).
_READY = (common_pb2.EXPORTER_STATUS_LEASE_READY, common_pb2.EXPORTER_STATUS_UNSPECIFIED)
_FAILED = common_pb2.EXPORTER_STATUS_BEFORE_LEASE_HOOK_FAILED
_IDLE = (common_pb2.EXPORTER_STATUS_AVAILABLE, common_pb2.EXPORTER_STATUS_OFFLINE)


class HookFailed(LabError):
    """The exporter's beforeLease hook failed: it will not be ready for this lease."""


async def wait_until_ready(lab: LabClient, lease_name: str, exporter: str, socket: str) -> None:
    """Return once the exporter behind the tunnel at `socket` is ready for `lease_name`.

    HookFailed when its beforeLease hook failed; LabError when the lease ended, or when the
    exporter stays unreachable for UNREACHABLE_SECONDS with no reason given.
    """
    channel = ExporterEndpoint(socket).aio_channel()
    stub = jumpstarter_pb2_grpc.ExporterServiceStub(channel)
    seen: int | None = None
    unreachable_since: float | None = None
    try:
        while True:
            metadata = () if seen is None else ((STATUS_AFTER_METADATA_KEY, str(seen)),)
            call = stub.GetStatus(
                jumpstarter_pb2.GetStatusRequest(), metadata=metadata, timeout=STATUS_WAIT_SECONDS + ANSWER_SECONDS
            )
            try:
                response = await cancellable(call)
                waited = seen is not None and any(
                    key == STATUS_AFTER_METADATA_KEY for key, _ in (await cancellable(call.initial_metadata())) or ()
                )
            except grpc.aio.AioRpcError as error:
                if error.code() == grpc.StatusCode.UNIMPLEMENTED:
                    return  # an exporter older than the status protocol: ready once reached
                await _ask_the_controller(lab, lease_name, exporter)
                now = time.monotonic()
                unreachable_since = unreachable_since or now
                if now - unreachable_since > UNREACHABLE_SECONDS:
                    details = printable(error.details() or error.code().name)
                    raise LabError(f"cannot reach exporter {exporter} of lease {lease_name}: {details}") from None
                await anyio.sleep(POLL_SECONDS)
                continue
            unreachable_since = None
            if _failed_just_before(response):
                response = await _the_failure(stub, response)
            if _ready(response, lease_name, exporter):
                return
            if not waited:  # an exporter that answers at once: ask again shortly
                await anyio.sleep(POLL_SECONDS)
            seen = response.status_version
    finally:
        with anyio.CancelScope(shield=True):
            await channel.close()


def _ready(response: jumpstarter_pb2.GetStatusResponse, lease_name: str, exporter: str) -> bool:
    """Whether the status says ready; HookFailed when it says that the beforeLease hook failed."""
    if response.status in _READY:
        return True
    if response.status == _FAILED or _failed_just_before(response):
        raise HookFailed(_hook_failure(exporter, lease_name, response.message))
    return False  # getting ready (BEFORE_LEASE_HOOK), or still ending the lease before this one


def _failed_just_before(response: jumpstarter_pb2.GetStatusResponse) -> bool:
    """Idle again right after a failed beforeLease hook (the exporter ended the lease)."""
    previous = response.previous_status if response.HasField("previous_status") else None
    return response.status in _IDLE and previous == _FAILED


async def _the_failure(
    stub: jumpstarter_pb2_grpc.ExporterServiceStub, response: jumpstarter_pb2.GetStatusResponse
) -> jumpstarter_pb2.GetStatusResponse:
    """The failed status itself, with the hook's message and output, from an exporter that remembers
    it (ours: the status after the version before it); else `response`."""
    if response.status_version < 2:
        return response
    try:
        metadata = ((STATUS_AFTER_METADATA_KEY, str(response.status_version - 2)),)
        failed = await cancellable(
            stub.GetStatus(jumpstarter_pb2.GetStatusRequest(), metadata=metadata, timeout=ANSWER_SECONDS)
        )
    except grpc.aio.AioRpcError:
        return response
    return failed if failed.status == _FAILED else response


async def _ask_the_controller(lab: LabClient, lease_name: str, exporter: str) -> None:
    """Raise what the controller knows when the exporter cannot be reached: a failed hook, an ended lease."""
    try:
        lease = await lab.get_lease(lease_name)
        record = await lab.get_exporter(exporter) if exporter else None
    except LabError:
        return  # it cannot tell now: the caller tries the exporter again
    if record is not None and record.status == _FAILED:
        raise HookFailed(_hook_failure(exporter, lease_name, record.status_message))
    failure = lease_failure(lease)
    if failure is not None:
        raise ended_error(exporter, lease_name, failure, lease)


def ended_error(exporter: str, lease_name: str, failure: str, lease: client_pb2.Lease | None) -> LabError:
    """The error of a lease that ended (`failure`: why; `lease`: as last seen) before its exporter was ready."""
    hook = before_lease_hook_failure(lease) if lease is not None else None
    if hook is not None:
        return HookFailed(_hook_failure(exporter, lease_name, hook))
    return LabError(f"{failure}, before exporter {exporter} was ready")


def _hook_failure(exporter: str, lease_name: str, message: str) -> str:
    """One line: the hook's failure (the first line of the status message) and its output's last line."""
    lines = [line.strip() for line in printable(message).splitlines() if line.strip()]
    what = lines[0] if lines else "the beforeLease hook failed"
    output = lines[2:]  # after "<kind> hook output:"
    tail = f" (its output ends: {output[-1]})" if len(lines) > 1 and output else ""
    return f"exporter {exporter} cannot serve lease {lease_name}: {what}{tail}"
