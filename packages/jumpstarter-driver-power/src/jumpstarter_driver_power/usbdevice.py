"""What the pyusb drivers share: finding their device, opening it lazily, clear errors.

`UsbHubPower` and `UsbRelayPower` talk to their device with control transfers through
pyusb. `UsbPowerDriver` finds the device (by vendor:product id, serial number and bus/port
path), opens it on first use, and turns pyusb's errors into ones that say what failed and
how to fix it:

| What went wrong | Raised |
|---|---|
| no device matches the config | `ConnectionError`, listing the devices present |
| no permission to open it | `NoPermission` (a `PermissionError` and a `ConnectionError`), with the udev rule to add |
| it does not answer in time | `TimeoutError` |
| it refused the request (a stalled transfer) | `OSError` |
| it is not what the config expects (several match, too few ports...) | `DeviceMismatch` |

Methods run in the exporter's worker threads (they are sync), where blocking on USB is fine.
"""

from __future__ import annotations

import errno
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Self

import usb.backend.libusb0
import usb.backend.libusb1
import usb.backend.openusb
import usb.core
import usb.util
from usb.backend import IBackend

from jumpstarter.driver import Driver
from jumpstarter_driver_power.driver import PowerInterface
from jumpstarter_driver_power.errors import DeviceMismatch, NoPermission
from jumpstarter_driver_power.settings import check_seconds

_USB_ID = re.compile(r"([0-9a-fA-F]{4}):([0-9a-fA-F]{4})")
# The kernel's and uhubctl's notation: the bus, then the port on each hub down from the root (1-1.4).
_PATH = re.compile(r"\d+(-\d+(\.\d+)*)?")


def parse_usb_id(value: object, setting: str = "usb_id") -> tuple[int, int]:
    """``"2109:2817"`` -> ``(0x2109, 0x2817)``; a ValueError naming `setting` otherwise."""
    match = _USB_ID.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(
            f"{setting} must be vendor:product in hexadecimal, as lsusb shows it (such as 2109:2817), not {value!r}"
        )
    return int(match[1], 16), int(match[2], 16)


def device_path(device: usb.core.Device) -> str:
    """The device's place on the bus as the kernel and uhubctl write it: ``1-1.4``, or ``2`` for a root hub."""
    ports = device.port_numbers
    return f"{device.bus}-{'.'.join(str(port) for port in ports)}" if ports else str(device.bus)


def describe(device: usb.core.Device) -> str:
    """``1-1.4 [2109:2817]``: where the device is and what it is, for messages."""
    return f"{device_path(device)} [{device.idVendor:04x}:{device.idProduct:04x}]"


def udev_rule(vendor: int, product: int) -> str:
    """The udev rule that lets the plugdev group open the device."""
    return (
        f'SUBSYSTEM=="usb", ATTR{{idVendor}}=="{vendor:04x}", ATTR{{idProduct}}=="{product:04x}", '
        'MODE="0660", GROUP="plugdev"'
    )


def read_string(device: usb.core.Device, index: int) -> str | None:
    """A string descriptor in the device's first language; None if the device has none.

    Unlike pyusb's ``Device.serial_number``, lets through the USBError of a device that
    cannot be opened, so that missing permissions are reported as such.
    """
    if not index:
        return None
    langids = usb.util.get_langids(device)
    if not langids:
        return None
    text: str | None = usb.util.get_string(device, index, langids[0])
    return text


def default_backend() -> IBackend:
    """The first USB library pyusb can load (its own order: libusb 1.0, OpenUSB, libusb 0.1)."""
    for module in (usb.backend.libusb1, usb.backend.openusb, usb.backend.libusb0):
        backend = module.get_backend()
        if backend is not None:
            return backend
    raise RuntimeError(
        "pyusb finds no USB library on the exporter: install libusb 1.0 "
        "(apt install libusb-1.0-0, dnf install libusb1, brew install libusb)"
    )


@dataclass(kw_only=True)
class UsbPowerDriver(PowerInterface, Driver):
    """Finds the driver's USB device and reports pyusb's errors clearly; subclasses speak its protocol.

    At least one of `usb_id`, `serial` and `path` must be set; a device must match all
    those that are.
    """

    usb_id: str | None = None
    """vendor:product in hexadecimal, as lsusb shows it (2109:2817)."""
    serial: str | None = None
    """The device's serial number."""
    path: str | None = None
    """Where the device is plugged: the bus, then the ports down from it (1-1.4), as uhubctl and lsusb -t show it."""
    timeout: float = 1.0
    """Seconds to wait for the device to answer a control transfer."""

    # Words for messages, set by subclasses.
    kind: ClassVar[str] = "USB device"
    kinds: ClassVar[str] = "USB devices"
    stall_hint: ClassVar[str] = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        self._ids = parse_usb_id(self.usb_id) if self.usb_id is not None else None
        if self.path is not None and not (isinstance(self.path, str) and _PATH.fullmatch(self.path)):
            raise ValueError(
                "path must be a bus and the ports down from it, such as 1-1.4 (bus 1, port 1, then port 4), "
                f"as uhubctl and lsusb -t show it, not {self.path!r}"
            )
        if self.serial is not None and not (isinstance(self.serial, str) and self.serial):
            raise ValueError(f"serial must be the device's serial number as text, not {self.serial!r}")
        if self._ids is None and self.serial is None and self.path is None:
            raise ValueError(
                f"{type(self).__name__} needs usb_id, serial or path to find its {self.kind}: set at least one"
            )
        check_seconds(self.timeout, "timeout")
        self._lock = threading.RLock()
        self._device: usb.core.Device | None = None
        self._usb_backend: IBackend | None = None

    def use_backend(self, backend: IBackend) -> Self:
        """Reach USB through `backend` (a ``usb.backend.IBackend``) instead of libusb; returns the driver.

        For tests and simulators: the exporter configuration has no such setting.
        """
        if not isinstance(backend, IBackend):
            raise TypeError(f"the backend must be a usb.backend.IBackend, not {backend!r}")
        self._usb_backend = backend
        return self

    # -- what subclasses provide ---------------------------------------------------------

    def _is_candidate(self, device: usb.core.Device) -> bool:
        """Whether a device on the bus may be this driver's, before the settings are compared."""
        return True

    def _read_serial(self, device: usb.core.Device) -> str | None:
        """The serial number that `serial` is compared with."""
        with self._errors("reading the serial number", device):
            return read_string(device, device.iSerialNumber)

    def _setup(self, device: usb.core.Device) -> None:
        """Check and prepare the device once it is chosen, before the first operation."""

    def _teardown(self, device: usb.core.Device) -> None:
        """Undo `_setup` (best effort) before the device is let go."""

    # -- finding and opening ---------------------------------------------------------------

    def _criteria(self) -> str:
        parts = []
        if self._ids is not None:
            parts.append(f"usb_id {self._ids[0]:04x}:{self._ids[1]:04x}")
        if self.serial is not None:
            parts.append(f"serial {self.serial!r}")
        if self.path is not None:
            parts.append(f"path {self.path}")
        return " and ".join(parts)

    def _find(self) -> usb.core.Device:
        backend = self._usb_backend or default_backend()
        with self._errors("listing the USB devices", None):
            present = [device for device in usb.core.find(find_all=True, backend=backend) if self._is_candidate(device)]
        for device in present:
            # pyusb's own requests (string descriptors) wait as long as ours.
            device.default_timeout = self._timeout_ms()
        candidates = [
            device
            for device in present
            if (self._ids is None or (device.idVendor, device.idProduct) == self._ids)
            and (self.path is None or device_path(device) == self.path)
        ]
        serials: list[str | None] = []
        if self.serial is not None:
            for device in candidates:
                try:
                    serials.append(self._read_serial(device))
                finally:
                    usb.util.dispose_resources(device)
            matching = [device for device, serial in zip(candidates, serials, strict=True) if serial == self.serial]
        else:
            matching = candidates
        if not matching:
            listing = ", ".join(describe(device) for device in present) or "none"
            message = f"no {self.kind} matches {self._criteria()}; {self.kinds} present: {listing}"
            if serials:
                message += (
                    f" (the serial numbers of those matching the other settings: {', '.join(map(repr, serials))})"
                )
            raise ConnectionError(
                f"{message}. Check that it is plugged in and powered (lsusb -t shows the tree), and the config"
            )
        if len(matching) > 1:
            listing = ", ".join(self._describe_with_serial(device) for device in matching)
            raise DeviceMismatch(
                f"{len(matching)} {self.kinds} match {self._criteria()}: {listing}; "
                "set serial or path in the config to choose one"
            )
        return matching[0]

    def _describe_with_serial(self, device: usb.core.Device) -> str:
        """`describe` and the serial number, to tell devices apart in a message."""
        try:
            serial = self._read_serial(device)
        except Exception:  # only for a message: an unreadable serial must not hide the real error
            return f"{describe(device)} (serial number unreadable)"
        finally:
            usb.util.dispose_resources(device)
        return f"{describe(device)} serial {serial!r}" if serial else f"{describe(device)} (no serial number)"

    def _open(self) -> usb.core.Device:
        """The device, found and set up on first use; call with the lock held."""
        if self._device is None:
            device = self._find()
            try:
                self._setup(device)
            except BaseException:
                self._let_go(device)
                raise
            self._device = device
        return self._device

    def _let_go(self, device: usb.core.Device) -> None:
        try:
            self._teardown(device)
        finally:
            usb.util.dispose_resources(device)

    def close(self) -> None:
        with self._lock:
            device, self._device = self._device, None
            if device is not None:
                try:
                    self._let_go(device)
                except Exception as error:  # the device may be gone: nothing left to release
                    self.logger.warning("releasing %s %s failed: %s", self.kind, describe(device), error)

    # -- transfers --------------------------------------------------------------------------

    def _control(self, action: str, request_type: int, request: int, value: int, index: int, data: Any = None) -> Any:
        """One control transfer to the driver's device, found and set up first if need be."""
        with self._lock:
            return self._transfer(self._open(), action, request_type, request, value, index, data)

    def _transfer(
        self, device: usb.core.Device, action: str, request_type: int, request: int, value: int, index: int, data: Any
    ) -> Any:
        """One control transfer: `data` is what to send (OUT) or how many bytes to read (IN)."""
        with self._errors(action, device):
            return device.ctrl_transfer(request_type, request, value, index, data, timeout=self._timeout_ms())

    def _timeout_ms(self) -> int:
        return max(1, round(self.timeout * 1000))

    @contextmanager
    def _errors(self, action: str, device: usb.core.Device | None) -> Iterator[None]:
        """Turn pyusb's errors during `action` on `device` into clear ones."""
        what = f"{self.kind} {describe(device)}" if device is not None else "the USB bus"
        try:
            yield
        except usb.core.USBTimeoutError as error:
            raise TimeoutError(f"{what} did not answer {action} within {self.timeout:g} s") from error
        except usb.core.USBError as error:
            if error.errno in (errno.EACCES, errno.EPERM) and device is not None:
                rule = udev_rule(device.idVendor, device.idProduct)
                raise NoPermission(
                    f"no permission to open {what} for {action}: add the udev rule '{rule}' to a file in "
                    "/etc/udev/rules.d/ (such as 50-jumpstarter-power.rules), run "
                    "'sudo udevadm control --reload-rules && sudo udevadm trigger', "
                    "and add the exporter's user to the plugdev group"
                ) from error
            if device is not None and device is self._device and error.errno != errno.EPIPE:
                # The device may have gone, or been reset: the next call looks for it again.
                self._forget(device)
            if error.errno == errno.ENODEV:
                raise ConnectionError(
                    f"{what} went away during {action}: check that it is still plugged in and powered"
                ) from error
            if error.errno == errno.EPIPE:
                raise OSError(f"{what} refused {action} (the control transfer stalled){self.stall_hint}") from error
            raise OSError(f"{action} on {what} failed: {error.strerror or error}") from error

    def _forget(self, device: usb.core.Device) -> None:
        self._device = None
        try:
            self._let_go(device)
        except Exception as error:  # a device that went away has nothing left to release
            self.logger.debug("releasing %s %s failed: %s", self.kind, describe(device), error)
