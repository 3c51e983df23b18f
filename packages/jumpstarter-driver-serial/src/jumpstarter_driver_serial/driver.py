"""The serial drivers: `PySerial`, a serial port through pyserial, and `LoopbackSerial`.

`PySerial` serves one port, named by a pyserial URL: a device path (``/dev/ttyUSB0``, a
``/dev/serial/by-id/...`` link), ``rfc2217://host:port``, ``socket://host:port`` or
``loop://``. Its `connect` stream is the console; `set_dtr`, `set_rts`, `send_break` and
`set_baudrate` work on the same open port.

The port is opened when first needed (a connection, or a control call) and stays open
until the session ends, so control lines keep their state between connections and
closing a connection does not touch the board. A device that goes away mid-session
(unplugged, or a USB serial that resets with its board) ends the connection with
`SerialPortGone`; the next connection opens it again.

One client at a time holds the `connect` stream: a second one fails with
`SerialPortBusy`, which says since when the port is held (a connection being closed is
waited for instead). Control calls are not exclusive: they can be made while another
client holds the console.
"""

from __future__ import annotations

import asyncio
import errno
import grp
import importlib.util
import os
import pwd
import re
import stat
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import anyio
from anyio.abc import ByteStream

from jumpstarter.driver import Driver, export, exportstream
from jumpstarter_driver_serial._port import READ_POLL_SECONDS, OpenPort
from jumpstarter_driver_serial.errors import (
    SerialPortBusy,
    SerialPortDenied,
    SerialPortError,
    SerialPortMissing,
    SerialPortUnreachable,
)

# Where udev links USB serial devices under stable names; listed when a device is missing.
BY_ID_DIR = "/dev/serial/by-id"

PARITIES = {"N": "none", "E": "even", "O": "odd", "M": "mark", "S": "space"}
BYTESIZES = (5, 6, 7, 8)
STOPBITS = (1, 1.5, 2)
NETWORK_SCHEMES = ("rfc2217", "socket")
# The longest break a client may ask for.
MAX_BREAK_SECONDS = 10.0
# errno values that mean the device behind an open port is gone.
_GONE_ERRNOS = (errno.EIO, errno.ENXIO, errno.ENODEV, errno.EBADF)
# How long a new connection waits for one being closed to let the port go (it takes milliseconds).
_RELEASE_SECONDS = 10.0


@dataclass(kw_only=True)
class PySerial(Driver):
    """A serial port (a device, rfc2217://, socket:// or loop://): a console stream, DTR, RTS, break and baud rate."""

    url: str
    """The port, in pyserial's URL syntax: /dev/ttyUSB0, /dev/serial/by-id/..., rfc2217://host:port,
    socket://host:port, loop://."""
    baudrate: int = 115200
    bytesize: int = 8
    parity: str = "N"
    """N, E, O, M or S (none, even, odd, mark, space)."""
    stopbits: float = 1
    rtscts: bool = False
    """Hardware (RTS/CTS) flow control."""
    xonxoff: bool = False
    """Software (XON/XOFF) flow control."""
    check_present: bool = True
    """Fail when the driver is created if a device path does not exist; False for a device that appears later."""
    cps: float | None = None
    """Send at most this many characters per second to the device, one at a time (for targets that drop input)."""
    disable_hupcl: bool = False
    """Clear HUPCL on a local device, so that closing the port does not drop DTR (and reset the board)."""

    @classmethod
    def client(cls) -> str:
        return "jumpstarter_driver_serial.client.PySerialClient"

    def __post_init__(self) -> None:
        super().__post_init__()
        self._scheme, self._local_path = _check_url(self.url)
        self.parity = _check_settings(self)
        self._lock = threading.Lock()  # guards _port and _streaming
        self._port: OpenPort | None = None
        self._streaming: OpenPort | None = None  # the port a connection uses (only it may close it)
        # Only used on the event loop: since when the port is held, by which task (the exporter's
        # handler of the connection: an asyncio task, as gRPC's asyncio runs it), and its release.
        self._held_since: tuple[datetime, float] | None = None
        self._holder: asyncio.Task[Any] | None = None
        self._released: anyio.Event | None = None
        if self.check_present and self._local_path is not None and not os.path.exists(self._local_path):
            raise SerialPortMissing(_missing_message(self._local_path) + _CHECK_PRESENT_HINT)

    # -- the console stream --------------------------------------------------------------------

    @exportstream
    @asynccontextmanager
    async def connect(self) -> AsyncIterator[ByteStream]:
        """The port as a byte stream, for one client at a time.

        It reads whatever the device sent, in chunks, without polling, and writes what the
        client sends (paced to `cps` if set). Its end of stream from the client changes
        nothing (a serial line cannot be half-closed): reading goes on until the client leaves.
        """
        if self._holder is not None and self._holder.cancelling():
            await self._holder_gone()
        if self._held_since is not None:
            raise SerialPortBusy(self._busy_message())
        self._held_since = (datetime.now().astimezone(), time.monotonic())
        self._holder, released = asyncio.current_task(), anyio.Event()
        self._released = released
        port: OpenPort | None = None
        try:
            port = await anyio.to_thread.run_sync(self._open_port)
            with self._lock:
                self._streaming = port
            stream = port.stream(self.cps)
            async with stream:
                yield stream
        finally:
            self._held_since = self._holder = None
            released.set()
            with self._lock:
                self._streaming = None
            if port is not None and port.gone is not None:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(self._discard, port)

    async def _holder_gone(self) -> None:
        """Wait for the connection that is being closed to let the port go.

        A client that leaves cancels its call, and the next connection (its own, often, opened at
        once) may come before the exporter's end of the first has unwound: its task is being
        cancelled. That one is waited for rather than refused; a connection still in use is not.
        """
        assert self._released is not None
        with anyio.move_on_after(_RELEASE_SECONDS):
            await self._released.wait()

    def _busy_message(self) -> str:
        assert self._held_since is not None
        since, started = self._held_since
        return (
            f"port busy: the serial port {self.url} is held by another client's connection, open since "
            f"{since:%H:%M:%S} ({_duration(time.monotonic() - started)}). One client at a time can use the "
            "console: close the other one (leave its `j serial console` or `j serial pipe`, or close the `open()` "
            "of the test that holds it) and try again"
        )

    # -- control -------------------------------------------------------------------------------

    @export
    def set_dtr(self, value: bool) -> None:
        """Assert (True) or release (False) DTR."""
        self._control("set DTR", lambda port: setattr(port, "dtr", value))

    @export
    def set_rts(self, value: bool) -> None:
        """Assert (True) or release (False) RTS."""
        self._control("set RTS", lambda port: setattr(port, "rts", value))

    @export
    def send_break(self, duration: float = 0.25) -> None:
        """Hold the line in the break condition for `duration` seconds."""
        if not 0 < duration <= MAX_BREAK_SECONDS:
            raise ValueError(f"a break lasts more than 0 and at most {MAX_BREAK_SECONDS:g} s, not {duration:g} s")

        def send(port: Any) -> None:
            port.break_condition = True
            try:
                time.sleep(duration)
            finally:
                port.break_condition = False

        self._control("send a break", send)

    @export
    def set_baudrate(self, baudrate: int) -> None:
        """Change the baud rate of the open port (until the session ends)."""
        if isinstance(baudrate, bool) or baudrate <= 0:
            raise ValueError(f"the baud rate is a positive number of bits per second, not {baudrate!r}")
        self._control("set the baud rate", lambda port: setattr(port, "baudrate", baudrate))

    @export
    def status(self) -> dict[str, Any]:
        """The port's settings and state: url, baudrate (current), framing, flow control, cps, open, held_since."""
        with self._lock:
            port = self._port
        is_open = port is not None and port.gone is None
        held = self._held_since
        return {
            "url": self.url,
            "baudrate": port.serial.baudrate if port is not None and is_open else self.baudrate,
            "bytesize": self.bytesize,
            "parity": self.parity,
            "stopbits": self.stopbits,
            "framing": f"{self.bytesize}{self.parity}{self.stopbits:g}",
            "rtscts": self.rtscts,
            "xonxoff": self.xonxoff,
            "cps": self.cps,
            "open": is_open,
            "held_since": held[0].isoformat(timespec="seconds") if held else None,
        }

    def _control(self, what: str, action: Callable[[Any], None]) -> None:
        port = self._open_port()
        try:
            action(port.serial)
        except (ValueError, NotImplementedError):
            raise
        except OSError as error:  # pyserial's SerialException too
            code = _errno_of(error)
            if code == errno.ENOTTY:
                raise NotImplementedError(
                    f"cannot {what} on {self.url}: the port has no modem control lines "
                    "(a pseudo-terminal, or an adapter without them)"
                ) from None
            if code in _GONE_ERRNOS:
                gone = port.lost(os.strerror(code))
                self._discard(port)
                raise gone from None
            raise SerialPortError(f"cannot {what} on {self.url}: {_reason(error)}") from None

    # -- opening and closing -------------------------------------------------------------------

    def _open_port(self) -> OpenPort:
        """The open port, opened now if it is not (call it in a worker thread: opening may block)."""
        with self._lock:
            if self._port is not None and self._port.gone is None:
                return self._port
            stale, self._port = self._port, None
            if stale is not None and stale is not self._streaming:
                stale.close()
            self._port = OpenPort(self._open_serial(), self.url)
            return self._port

    def _open_serial(self) -> Any:
        import serial
        from serial import serialposix

        port = serial.serial_for_url(
            self.url,
            do_not_open=True,
            baudrate=self.baudrate,
            bytesize=self.bytesize,
            parity=self.parity,
            stopbits=self.stopbits,
            rtscts=self.rtscts,
            xonxoff=self.xonxoff,
            timeout=READ_POLL_SECONDS,  # for the ports read by a thread; a device is read on the event loop
        )
        if isinstance(port, serialposix.Serial):
            # VMIN=1 (pyserial keeps it through reconfigurations): a read of an empty tty then fails with
            # EAGAIN, and only a device that went away reads as end of file. With pyserial's VMIN=0 an
            # empty tty reads as end of file too.
            port.inter_byte_timeout = 0
            port.exclusive = True  # an advisory lock: other well-behaved programs see the port as busy
        try:
            port.open()
        except serial.SerialException as error:
            raise self._open_error(error) from None
        except ValueError as error:
            raise ValueError(f"cannot open {self.url} with these settings: {error}") from None
        try:
            self._after_open(port)
        except BaseException:
            port.close()
            raise
        return port

    def _after_open(self, port: Any) -> None:
        from serial import serialposix

        if not isinstance(port, serialposix.Serial) or port.fd is None or port.port is None:
            return  # (an open port has both: a file descriptor and the device's path)
        if self.disable_hupcl:
            import termios

            attributes = termios.tcgetattr(port.fd)
            attributes[2] &= ~termios.HUPCL
            termios.tcsetattr(port.fd, termios.TCSANOW, attributes)
        others = [holder for holder in _holders(port.port) if not holder.startswith("this exporter")]
        if others:
            self.logger.warning(
                "%s is also open in %s: each program gets part of what the device sends", self.url, ", ".join(others)
            )

    def _open_error(self, error: OSError) -> Exception:
        path = self._local_path
        if path is None:
            reason = _reason(error)
            if self._scheme == "rfc2217":
                hint = "; is the serial server (such as ser2net) running there, with an RFC 2217 (telnet) port?"
            elif self._scheme == "socket":
                hint = "; is the serial server running there?"
            else:
                return SerialPortError(f"cannot open {self.url}: {reason}")
            return SerialPortUnreachable(f"cannot open {self.url}: {reason}{hint}")
        code = error.errno
        if code == errno.ENOENT or not os.path.exists(path):
            return SerialPortMissing(_missing_message(path))
        if code in (errno.EACCES, errno.EPERM):
            return SerialPortDenied(_denied_message(path))
        if code in (errno.EBUSY, errno.EAGAIN):
            holders = _holders(path)
            # This process appears when another driver of the exporter has the port; name the others first.
            holders = [holder for holder in holders if not holder.startswith("this exporter")] or holders
            who = f"held by {', '.join(holders)}" if holders else "held by another program (it holds a lock on it)"
            return SerialPortBusy(f"port busy: the serial port {path} is {who} on the exporter's host; close it there")
        if code in (errno.ENXIO, errno.ENODEV, errno.EIO):
            return SerialPortMissing(
                f"{path} exists, but no device answers behind it ({_reason(error)}): unplugged, or still starting"
            )
        return SerialPortError(f"cannot open the serial port {path}: {_reason(error)}")

    def _discard(self, port: OpenPort) -> None:
        """Forget a port that went away; close it unless a connection still uses it (which closes it then)."""
        with self._lock:
            if self._port is port:
                self._port = None
            if port is self._streaming:
                return
        port.close()

    def close(self) -> None:
        with self._lock:
            port, self._port = self._port, None
        if port is not None:
            port.close()


@dataclass(kw_only=True)
class LoopbackSerial(PySerial):
    """A serial port looped back in software (pyserial's loop://): what a client sends comes back. No hardware."""

    url: str = field(default="loop://", init=False)


# -- checks and messages -----------------------------------------------------------------------

_CHECK_PRESENT_HINT = (
    ". If the device appears later (once the board is powered, say), set check_present: false "
    "and it is opened when a client connects"
)


def _check_url(url: Any) -> tuple[str | None, str | None]:
    """(scheme, local device path) of a pyserial URL; a ValueError naming `url` if it cannot work."""
    if not isinstance(url, str) or not url.strip():
        raise ValueError(f"url must name the port, such as /dev/ttyUSB0, rfc2217://host:port or loop://, not {url!r}")
    if "://" not in url:
        return None, url
    scheme = url.split("://", 1)[0].lower()
    if not scheme.isidentifier() or importlib.util.find_spec(f"serial.urlhandler.protocol_{scheme}") is None:
        raise ValueError(
            f"url {url!r}: pyserial knows no {scheme}:// ports; use a device path, rfc2217://host:port, "
            "socket://host:port or loop:// (or hwgrep://, spy://, alt://)"
        )
    if scheme in NETWORK_SCHEMES:
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or port is None:
            raise ValueError(f"url {url!r}: write {scheme}://host:port, with the host and the TCP port")
    return scheme, None


def _check_settings(driver: PySerial) -> str:
    """Check the line settings; return the parity as pyserial's letter."""
    if isinstance(driver.baudrate, bool) or not isinstance(driver.baudrate, int) or driver.baudrate <= 0:
        raise ValueError(f"baudrate must be a positive whole number of bits per second, not {driver.baudrate!r}")
    if driver.bytesize not in BYTESIZES:
        raise ValueError(f"bytesize must be one of {', '.join(map(str, BYTESIZES))}, not {driver.bytesize!r}")
    if driver.stopbits not in STOPBITS:
        raise ValueError(f"stopbits must be 1, 1.5 or 2, not {driver.stopbits!r}")
    parity = str(driver.parity).strip().lower()
    letter = next((key for key, name in PARITIES.items() if parity in (key.lower(), name)), None)
    if letter is None:
        raise ValueError(f"parity must be N, E, O, M or S (none, even, odd, mark, space), not {driver.parity!r}")
    if driver.cps is not None and not driver.cps > 0:
        raise ValueError(f"cps must be a positive number of characters per second (or unset), not {driver.cps!r}")
    return letter


def _errno_of(error: BaseException) -> int | None:
    """The errno of an error, or of the error it was raised from (pyserial wraps termios errors without one)."""
    seen = 0
    current: BaseException | None = error
    while current is not None and seen < 5:
        code = getattr(current, "errno", None)
        if code is None and current.args and isinstance(current.args[0], int):
            code = current.args[0]  # termios.error(errno, message)
        if isinstance(code, int):
            return code
        current = current.__cause__ or current.__context__
        seen += 1
    return None


def _reason(error: OSError) -> str:
    """The useful part of a pyserial error ("Connection refused"), not its whole story."""
    if error.errno is not None:
        return os.strerror(error.errno)
    text = str(error)
    match = re.search(r"\[Errno -?\d+\] (.*)$", text)
    if match:
        return match.group(1)
    return text.removeprefix("could not open port ").removeprefix("Could not open port ")


def _missing_message(path: str) -> str:
    text = f"no serial device at {path}: is it plugged in, and its board powered?"
    if not os.path.isdir(BY_ID_DIR):
        return text + f" There is no {BY_ID_DIR}: no USB serial device is plugged in (or udev does not run here)"
    entries = [f"{os.path.join(BY_ID_DIR, name)} -> {os.path.realpath(os.path.join(BY_ID_DIR, name))}"
               for name in sorted(os.listdir(BY_ID_DIR))]  # fmt: skip
    if not entries:
        return text + f" {BY_ID_DIR} is empty: no USB serial device is plugged in"
    return text + f" {BY_ID_DIR} holds: " + ", ".join(entries)


def _denied_message(path: str) -> str:
    try:
        user = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        user = str(os.geteuid())
    try:
        info = os.stat(path)
        group = grp.getgrgid(info.st_gid).gr_name
        mode = stat.filemode(info.st_mode)
    except (OSError, KeyError):
        group, mode = "dialout", "?"
    return (
        f"permission denied opening {path} ({mode}, group {group}): the exporter runs as {user}, who is not in the "
        f"group {group!r}. Add it: `sudo usermod -aG {group} {user}`, then log in again (or restart the "
        "exporter's service); or give access with a udev rule such as "
        f'SUBSYSTEM=="tty", ATTRS{{idVendor}}=="0403", ATTRS{{idProduct}}=="6001", GROUP="{group}", MODE="0660" '
        "in /etc/udev/rules.d/70-serial.rules (see the udev tips of the jumpstarter-driver-serial README)"
    )


def _holders(path: str) -> list[str]:
    """The processes that have `path` open, from /proc: "pid 123 (minicom)"; this process is "this exporter"."""
    target = os.path.realpath(path)
    found = []
    try:
        pids = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return []
    for pid in pids:
        directory = f"/proc/{pid}/fd"
        try:
            if not any(os.readlink(f"{directory}/{fd}") == target for fd in os.listdir(directory)):
                continue
            with open(f"/proc/{pid}/comm") as comm:
                name = comm.read().strip()
        except OSError:
            continue  # gone, or not ours to look at
        found.append(f"this exporter (pid {pid})" if int(pid) == os.getpid() else f"pid {pid} ({name})")
    return found


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds // 60:.0f} min {seconds % 60:.0f} s"
    return f"{seconds // 3600:.0f} h {seconds % 3600 // 60:.0f} min"
