"""`SerialRelayPower`: relay modules switched by fixed byte commands on a serial port.

The default commands are those of the LCUS family (CH340 USB-serial relay modules with 1,
2, 4 or 8 channels, 9600 baud 8N1): ``A0 <channel> 01 <sum>`` switches a channel on,
``A0 <channel> 00 <sum>`` off, where ``sum = (0xA0 + channel + state) & 0xFF``; so
``A0 01 01 A2`` and ``A0 01 00 A1`` for channel 1. Other modules work with their own byte
sequences in `on_bytes` and `off_bytes`.

The methods are sync: pyserial blocks, and they run in the exporter's worker threads.
"""

from __future__ import annotations

import contextlib
import errno
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import serial

from jumpstarter.driver import Driver, export
from jumpstarter_driver_power.common import MeasurementNotSupported, PowerReading, StateNotSupported
from jumpstarter_driver_power.driver import PowerInterface
from jumpstarter_driver_power.errors import NoPermission
from jumpstarter_driver_power.settings import check_number, check_seconds

LCUS_HEADER = 0xA0
# The most bytes of a command that a message shows.
_SHOWN_BYTES = 16


def lcus_command(channel: int, on: bool) -> bytes:
    """The LCUS command switching `channel` on or off: header, channel, state, checksum."""
    state = 1 if on else 0
    return bytes([LCUS_HEADER, channel, state, (LCUS_HEADER + channel + state) & 0xFF])


def parse_hex(value: object, setting: str) -> bytes:
    """``"A0 01 01 A2"`` -> bytes; spaces, colons, commas and 0x prefixes are allowed between bytes."""
    data = b""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):  # not hexadecimal: refused below
            data = bytes.fromhex(re.sub(r"0[xX]|[\s:,]", "", value))
    if not data:
        raise ValueError(f"{setting} must be bytes in hexadecimal, such as 'A0 01 01 A2', not {value!r}")
    return data


@dataclass(kw_only=True)
class SerialRelayPower(PowerInterface, Driver):
    """A relay module switched by fixed byte commands on a serial port (LCUS modules by default), through pyserial.

    The module neither measures nor reports its state: `read` raises
    MeasurementNotSupported and `state` StateNotSupported.
    """

    port: str
    """The serial port: a device (better a /dev/serial/by-id/... name) or a pyserial URL (rfc2217://host:port)."""
    channel: int = 1
    """The relay channel, from 1; it sets the default commands."""
    baudrate: int = 9600
    """Bits per second (8 data bits, no parity, 1 stop bit)."""
    on_bytes: str | None = None
    """The command that switches the relay on, in hexadecimal (default: LCUS's, for channel)."""
    off_bytes: str | None = None
    """The command that switches the relay off, in hexadecimal (default: LCUS's, for channel)."""
    timeout: float = 2.0
    """Seconds that writing a command may take."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.port, str) or not self.port:
            raise ValueError(f"port must name a serial port, such as /dev/ttyUSB0, not {self.port!r}")
        check_number(self.channel, "channel", "a relay channel", 1, 255)
        check_number(self.baudrate, "baudrate", "bits per second", 1, 10_000_000)
        check_seconds(self.timeout, "timeout")
        self._commands = {
            True: parse_hex(self.on_bytes, "on_bytes")
            if self.on_bytes is not None
            else lcus_command(self.channel, True),
            False: parse_hex(self.off_bytes, "off_bytes")
            if self.off_bytes is not None
            else lcus_command(self.channel, False),
        }
        self._lock = threading.Lock()
        self._serial: serial.SerialBase | None = None

    def _open(self) -> serial.SerialBase:
        """The port, opened on first use and kept open; call with the lock held."""
        if self._serial is None:
            try:
                self._serial = serial.serial_for_url(
                    self.port,
                    baudrate=self.baudrate,
                    bytesize=serial.EIGHTBITS,
                    parity=serial.PARITY_NONE,
                    stopbits=serial.STOPBITS_ONE,
                    timeout=self.timeout,
                    write_timeout=self.timeout,
                )
            except (serial.SerialException, OSError, ValueError) as error:
                raise _open_error(self.port, error) from error
        return self._serial

    def _switch(self, on: bool) -> None:
        command = self._commands[on]
        what = "on" if on else "off"
        shown = _show(command)
        with self._lock:
            port = self._open()
            try:
                port.write(command)
                port.flush()
            except serial.SerialTimeoutException as error:
                self._drop()
                raise TimeoutError(
                    f"writing the {what} command ({shown}) to {self.port} did not finish within {self.timeout:g} s"
                ) from error
            except (serial.SerialException, OSError) as error:
                self._drop()  # the next command opens the port again
                raise ConnectionError(
                    f"writing the {what} command ({shown}) to {self.port} failed: {error}; "
                    "check that the relay module is still plugged in"
                ) from error
        self.logger.info("power %s: sent %s to %s", what, shown, self.port)

    def _drop(self) -> None:
        port, self._serial = self._serial, None
        if port is not None:
            with contextlib.suppress(serial.SerialException, OSError):  # a port that went away has nothing to close
                port.close()

    def close(self) -> None:
        with self._lock:
            self._drop()

    @export
    def on(self) -> None:
        self._switch(True)

    @export
    def off(self) -> None:
        self._switch(False)

    @export
    def state(self) -> bool:
        raise StateNotSupported("a serial relay module takes commands but does not report its state")

    @export
    def read(self) -> Iterator[PowerReading]:
        raise MeasurementNotSupported("a serial relay module switches the power but does not measure it")
        yield  # a generator, like every read


def _show(command: bytes) -> str:
    """The command in hexadecimal for messages; a long one is cut short (a message must stay small)."""
    if len(command) <= _SHOWN_BYTES:
        return command.hex(" ")
    return f"{command[:_SHOWN_BYTES].hex(' ')} ... {len(command)} bytes"


def _open_error(port: str, error: Exception) -> Exception:
    code = getattr(error, "errno", None)
    if code in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return ConnectionError(
            f"serial port {port} does not exist: check that the relay module is plugged in "
            "and the port's name (ls /dev/serial/by-id/)"
        )
    if code in (errno.EACCES, errno.EPERM):
        return NoPermission(
            f"no permission to open serial port {port}: add the exporter's user to the group that owns it "
            f"(ls -l {port} shows it, usually dialout: sudo usermod -aG dialout USER, then log in again)"
        )
    if code == errno.EBUSY:
        return ConnectionError(f"serial port {port} is busy: another program holds it (fuser {port} names it)")
    if isinstance(error, ValueError):
        return ValueError(f"port {port!r} is not a serial port or pyserial URL pyserial can open: {error}")
    return ConnectionError(f"cannot open serial port {port}: {error}")
