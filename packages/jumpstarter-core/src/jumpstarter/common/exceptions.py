"""Errors that cross the wire.

A driver raises ordinary Python exceptions; the exporter maps them to gRPC status codes
(see `jumpstarter.common.wire`) and the client raises the matching class below. Each
class also derives from the builtin exception a caller would naturally catch, so
`except ValueError` works for an invalid argument whether the driver is local or remote.
"""

from __future__ import annotations

__all__ = [
    "DriverClientUnavailable",
    "DriverConnectionError",
    "DriverError",
    "DriverInvalidArgument",
    "DriverMethodNotImplemented",
    "DriverTimeout",
    "ExporterConnectionLost",
    "ExporterNotReady",
    "JumpstarterException",
]


class JumpstarterException(Exception):
    """Base class of the errors jumpstarter raises."""


class DriverError(JumpstarterException):
    """A driver call failed. The message is the one the driver raised."""


class DriverMethodNotImplemented(DriverError, NotImplementedError):
    """The driver does not implement the method, or it is not exported for this kind of call."""


class DriverInvalidArgument(DriverError, ValueError):
    """The arguments of a driver call were rejected."""


class DriverTimeout(DriverError, TimeoutError):
    """The driver gave up waiting for the hardware."""


class DriverConnectionError(DriverError, ConnectionError):
    """The driver lost its hardware, or the client lost the exporter (`ExporterConnectionLost`)."""


class ExporterConnectionLost(DriverConnectionError):
    """The exporter cannot be reached, or the connection to it broke: no driver raised this."""


class ExporterNotReady(DriverError):
    """The exporter does not accept driver calls in its current state."""


class DriverClientUnavailable(JumpstarterException, ImportError):
    """The client class an exporter named for a driver was refused or is not installed.

    Raised when such a driver is used; the rest of the driver tree keeps working.
    """
