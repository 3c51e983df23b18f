"""gRPC statuses of driver calls, turned back into Python exceptions."""

from __future__ import annotations

from collections.abc import Sequence

import grpc

from jumpstarter.common.exceptions import (
    DriverConnectionError,
    DriverError,
    DriverInvalidArgument,
    DriverMethodNotImplemented,
    DriverTimeout,
    ExporterConnectionLost,
    ExporterNotReady,
)
from jumpstarter.common.protocol import ERROR_CLASS_METADATA_KEY, MAX_MESSAGE_BYTES

_CLASSES: dict[grpc.StatusCode, type[DriverError]] = {
    grpc.StatusCode.FAILED_PRECONDITION: ExporterNotReady,
    grpc.StatusCode.NOT_FOUND: DriverMethodNotImplemented,
    grpc.StatusCode.UNIMPLEMENTED: DriverMethodNotImplemented,
    grpc.StatusCode.INVALID_ARGUMENT: DriverInvalidArgument,
    grpc.StatusCode.DEADLINE_EXCEEDED: DriverTimeout,
    grpc.StatusCode.UNAVAILABLE: DriverConnectionError,
}


def error_from_status(
    code: grpc.StatusCode, details: str | None, trailing_metadata: Sequence[tuple[str, str]] | None, method: str
) -> DriverError:
    """The exception a client raises for a failed call of `method`."""
    raised_as = dict(trailing_metadata or ()).get(ERROR_CLASS_METADATA_KEY)
    message = details or code.name
    error_class = _CLASSES.get(code, DriverError)
    if raised_as is None:
        # No driver raised this: the exporter, or the connection to it, failed.
        if code == grpc.StatusCode.UNAVAILABLE:
            message = f"lost the connection to the exporter: {message}"
            error_class = ExporterConnectionLost
        elif code == grpc.StatusCode.CANCELLED:
            message = f"the call was cancelled: {message}"
        elif code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            message = (
                f"{message} (a call carries at most {MAX_MESSAGE_BYTES >> 20} MiB, 4 MiB with older exporters; "
                "send bulk data with client.resource() or a byte stream)"
            )
    error = error_class(message)
    error.add_note(
        f"in a call of {method!r}"
        + (f" where the driver raised {raised_as}" if raised_as else "")
        + f" (gRPC status {code.name})"
    )
    return error


def error_from_rpc(error: grpc.RpcError, method: str) -> DriverError:
    """The exception for a failed gRPC call (sync or async API)."""
    return error_from_status(error.code(), error.details(), error.trailing_metadata(), method)  # type: ignore[attr-defined]
