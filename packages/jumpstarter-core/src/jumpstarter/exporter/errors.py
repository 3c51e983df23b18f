"""How exceptions raised by drivers become gRPC status codes."""

from __future__ import annotations

import grpc

from jumpstarter.common.exceptions import ExporterNotReady


class StatusError(Exception):
    """An error that carries its own status code (an unknown driver or method, bad arguments...)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def status_code_for(error: BaseException) -> grpc.StatusCode:
    """The status code a driver exception travels as; the more specific classes come first."""
    if isinstance(error, StatusError):
        return error.code
    if isinstance(error, ExporterNotReady):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(error, NotImplementedError):
        return grpc.StatusCode.UNIMPLEMENTED
    if isinstance(error, ValueError):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(error, TimeoutError):
        return grpc.StatusCode.DEADLINE_EXCEEDED
    if isinstance(error, ConnectionError):
        return grpc.StatusCode.UNAVAILABLE
    if isinstance(error, OSError):
        return grpc.StatusCode.INTERNAL
    return grpc.StatusCode.UNKNOWN


def status_details_for(error: BaseException) -> str:
    """The message a client shows: the driver's own text, or the exception's name when it has none."""
    return str(error) or type(error).__name__
