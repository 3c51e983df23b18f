"""The errors of the serial drivers.

All of them are `ConnectionError`s: the exporter sends them with the status UNAVAILABLE,
and a client receives a `jumpstarter.client.DriverConnectionError` with the driver's
message (its notes name the class below). This module imports nothing heavy, so clients
and tests may import it.
"""

from __future__ import annotations


class SerialPortError(ConnectionError):
    """The serial port cannot be used."""


class SerialPortMissing(SerialPortError):
    """No device at the configured path (unplugged, not powered, or another name)."""


class SerialPortDenied(SerialPortError):
    """The exporter's user may not open the device (permissions)."""


class SerialPortBusy(SerialPortError):
    """Someone else holds the port: another client of this exporter, or another process."""


class SerialPortUnreachable(SerialPortError):
    """The network serial server (``rfc2217://``, ``socket://``) does not answer."""


class SerialPortGone(SerialPortError):
    """The device went away while it was open (unplugged, or its USB serial reset)."""
