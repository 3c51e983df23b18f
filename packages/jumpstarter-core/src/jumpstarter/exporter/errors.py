"""How exceptions raised by drivers become gRPC status codes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import grpc

from jumpstarter.common.exceptions import ExporterNotReady


class StatusError(Exception):
    """An error that carries its own status code (an unknown driver or method, bad arguments...)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class DriverExited(RuntimeError):
    """Driver code raised SystemExit or KeyboardInterrupt: that ends its call, not the exporter."""


# What driver code must not be able to raise out of a call: asyncio would stop the event loop.
EXITS = (SystemExit, KeyboardInterrupt)


def exit_as_error(error: BaseException) -> DriverExited:
    return DriverExited(f"the driver raised {type(error).__name__}({', '.join(map(repr, error.args))}) in a call")


@contextmanager
def exits_contained() -> Iterator[None]:
    """Turn SystemExit and KeyboardInterrupt raised by driver code into `DriverExited`."""
    try:
        yield
    except EXITS as error:
        raise exit_as_error(error) from error


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


# Status details travel in a trailer, and gRPC refuses a response whose metadata passes
# 16 KiB (the client would get neither the message nor the error's class): longer messages
# are cut.
MAX_DETAILS_CHARACTERS = 4096


def status_details_for(error: BaseException) -> str:
    """The message a client shows: the driver's own text, or the exception's name when it has none."""
    details = str(error) or type(error).__name__
    if len(details) > MAX_DETAILS_CHARACTERS:
        cut = len(details) - MAX_DETAILS_CHARACTERS
        details = f"{details[:MAX_DETAILS_CHARACTERS]}... ({cut} more characters in the exporter's log)"
    return details
