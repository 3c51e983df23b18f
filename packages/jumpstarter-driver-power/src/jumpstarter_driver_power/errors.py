"""Exceptions the hardware drivers raise for expected trouble with their hardware.

Each derives from the builtin class whose gRPC status fits, so that a client gets a
meaningful class (see the core's error table) and the exporter does not log a traceback, as
it does for unexpected exceptions.
"""

from __future__ import annotations


class NoPermission(ConnectionError, PermissionError):
    """The exporter's user may not open the device; the message says how to grant it.

    A `PermissionError` for code that calls the driver directly; travels as a
    `ConnectionError` (clients get `DriverConnectionError`): the device is out of reach.
    """


class DeviceMismatch(ValueError):
    """The device found is not what the driver's config expects (or several devices match it).

    The message says which setting to fix; clients get `DriverInvalidArgument`.
    """
