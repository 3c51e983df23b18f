"""`UsbRelayPower`: one relay of a HID USB relay board of the common "USBRelay" family.

These boards (V-USB firmware, 16c0:05df, product "USBRelay1", "USBRelay2"... after their
number of relays) take HID feature reports on the control endpoint: SET_REPORT with
``FF n`` switches relay n on, ``FD n`` off (``FE`` / ``FC``: all of them); GET_REPORT answers
8 bytes, the board's serial number in bytes 0-4 and a bit mask of the relays that are on
in byte 7. The serial number lives in that report, not in a USB string descriptor.

On Linux the kernel's HID driver holds the board's interface: it is detached while the
driver uses the board and attached again when the driver closes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import usb.core
import usb.util

from jumpstarter.driver import export
from jumpstarter_driver_power.common import MeasurementNotSupported, PowerReading
from jumpstarter_driver_power.errors import DeviceMismatch
from jumpstarter_driver_power.settings import check_number
from jumpstarter_driver_power.usbdevice import UsbPowerDriver, describe, read_string

SET_REPORT_REQUEST = 0x21  # host to device, class, interface
GET_REPORT_REQUEST = 0xA1  # device to host, class, interface
SET_REPORT = 0x09
GET_REPORT = 0x01
FEATURE_REPORT = 0x0300  # wValue: report type 3 (feature) << 8 | report id 0
INTERFACE = 0
REPORT_LENGTH = 8

RELAY_ON = 0xFF
RELAY_OFF = 0xFD

_PRODUCT = re.compile(r"USBRelay(\d+)")


@dataclass(kw_only=True)
class UsbRelayPower(UsbPowerDriver):
    """One relay of a HID USB relay board (USBRelay1/2/4/8, 16c0:05df), through pyusb.

    With several boards on the exporter, choose one by `serial` (the 5 characters its
    report carries; the error listing the boards shows them) or by `path`. The board cannot
    measure: `read` raises MeasurementNotSupported; `state` reads the relay's state back.
    """

    usb_id: str | None = "16c0:05df"
    relay: int = 1
    """The relay to switch, from 1."""

    kind = "USBRelay board"
    kinds = "USBRelay boards"
    stall_hint = ": is it a USBRelay board?"

    def __post_init__(self) -> None:
        if self.usb_id is None:
            # Without it, finding a board by serial would send HID requests to every device on the bus.
            raise ValueError("UsbRelayPower needs usb_id: leave it out for the usual boards' 16c0:05df")
        super().__post_init__()
        check_number(self.relay, "relay", "a relay of the board", 1, 8)
        self._detached = False

    def _is_candidate(self, device: usb.core.Device) -> bool:
        return (device.idVendor, device.idProduct) == self._ids

    # -- the HID interface, taken from the kernel ---------------------------------------------

    def _detach(self, device: usb.core.Device) -> bool:
        """Detach the kernel's HID driver from the board's interface; whether it was attached."""
        with self._errors("detaching the kernel's HID driver", device):
            try:
                attached = device.is_kernel_driver_active(INTERFACE)
            except NotImplementedError:  # a backend or system without kernel drivers to detach
                return False
            if attached:
                device.detach_kernel_driver(INTERFACE)
            return bool(attached)

    def _reattach(self, device: usb.core.Device) -> None:
        with self._errors("giving the board back to the kernel's HID driver", device):
            usb.util.release_interface(device, INTERFACE)
            device.attach_kernel_driver(INTERFACE)

    def _read_serial(self, device: usb.core.Device) -> str | None:
        detached = self._detach(device)
        try:
            return _serial_of(self._get_report(device))
        finally:
            if detached:
                self._reattach(device)

    def _setup(self, device: usb.core.Device) -> None:
        self._detached = self._detach(device)
        with self._errors("reading the product name", device):
            product = read_string(device, device.iProduct) or ""
        match = _PRODUCT.fullmatch(product)
        if match is None:
            self.logger.warning(
                "%s calls itself %r, not USBRelayN: driving it as a relay board", describe(device), product
            )
        elif self.relay > int(match[1]):
            raise DeviceMismatch(
                f"USBRelay board {describe(device)} ({product}) has no relay {self.relay}: "
                f"its relays are 1 to {match[1]}; fix relay in the config"
            )

    def _teardown(self, device: usb.core.Device) -> None:
        if self._detached:
            self._detached = False
            self._reattach(device)

    # -- feature reports ------------------------------------------------------------------------

    def _get_report(self, device: usb.core.Device) -> bytes:
        report = self._transfer(
            device, "GET_REPORT (feature)", GET_REPORT_REQUEST, GET_REPORT, FEATURE_REPORT, INTERFACE, REPORT_LENGTH
        )
        if len(report) < REPORT_LENGTH:
            raise OSError(f"USBRelay board {describe(device)} sent a short report: {bytes(report).hex(' ')}")
        return bytes(report)

    def _set_report(self, command: int, action: str) -> None:
        data = bytes([command, self.relay, 0, 0, 0, 0, 0, 0])
        self._control(action, SET_REPORT_REQUEST, SET_REPORT, FEATURE_REPORT, INTERFACE, data)

    @export
    def on(self) -> None:
        self._set_report(RELAY_ON, f"SET_REPORT switching relay {self.relay} on")
        self.logger.info("relay %d: on", self.relay)

    @export
    def off(self) -> None:
        self._set_report(RELAY_OFF, f"SET_REPORT switching relay {self.relay} off")
        self.logger.info("relay %d: off", self.relay)

    @export
    def state(self) -> bool:
        with self._lock:
            report = self._get_report(self._open())
        return bool(report[7] >> (self.relay - 1) & 1)

    @export
    def read(self) -> Iterator[PowerReading]:
        raise MeasurementNotSupported("a USB relay board switches the power but does not measure it")
        yield  # a generator, like every read


def _serial_of(report: bytes) -> str:
    return report[:5].rstrip(b"\0").decode("ascii", "replace")
