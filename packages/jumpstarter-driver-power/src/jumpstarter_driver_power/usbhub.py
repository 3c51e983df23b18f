"""`UsbHubPower`: the power of one port of a USB hub that switches its ports one by one.

The mechanism uhubctl uses: hub class requests on the control endpoint (USB 2.0 section
11.24.2, USB 3.2 section 10.16.2). SET_FEATURE / CLEAR_FEATURE of the PORT_POWER feature
switch a port, GET_STATUS tells whether it is powered, and the hub descriptor says how many
ports the hub has and whether it switches them one by one (per-port power switching), all
together (ganged) or not at all (wHubCharacteristics bits 0-1).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import usb.core

from jumpstarter.driver import export
from jumpstarter_driver_power.common import MeasurementNotSupported, PowerReading
from jumpstarter_driver_power.errors import DeviceMismatch
from jumpstarter_driver_power.settings import check_number
from jumpstarter_driver_power.usbdevice import UsbPowerDriver, describe

HUB_CLASS = 0x09

# bmRequestType: direction | type (class) | recipient
SET_PORT_REQUEST = 0x23  # host to device, class, other (a port)
GET_PORT_REQUEST = 0xA3  # device to host, class, other (a port)
GET_HUB_REQUEST = 0xA0  # device to host, class, device (the hub)

# bRequest
GET_STATUS = 0
CLEAR_FEATURE = 1
SET_FEATURE = 3
GET_DESCRIPTOR = 6

PORT_POWER = 8  # the feature selector

# Descriptor types, and the PORT_POWER bit of wPortStatus, of USB 2 and USB 3 (SuperSpeed) hubs.
HUB_DESCRIPTOR = 0x29
SUPERSPEED_HUB_DESCRIPTOR = 0x2A
PORT_POWER_BIT = 0x0100
SUPERSPEED_PORT_POWER_BIT = 0x0200
# The longest hub descriptors: 7 + 2 * 32 bytes for a USB 2 hub of 255 ports, 12 bytes for USB 3.
HUB_DESCRIPTOR_LENGTH = 71
SUPERSPEED_HUB_DESCRIPTOR_LENGTH = 12
PORT_STATUS_LENGTH = 4

# wHubCharacteristics bits 0-1: the logical power switching mode.
_SWITCHING = {0b00: "ganged", 0b01: "per-port", 0b10: "none", 0b11: "none"}


@dataclass(kw_only=True)
class UsbHubPower(UsbPowerDriver):
    """One port of a USB hub with per-port power switching (as uhubctl switches it), through pyusb.

    The hub is found by `usb_id` (vendor:product), `serial` and `path` (bus-port.port...):
    at least one of them. The hub cannot measure: `read` raises MeasurementNotSupported;
    `state` reads the port's power bit back.
    """

    port: int
    """The hub's port to switch, from 1."""
    force: bool = False
    """Switch even if the hub descriptor says the hub cannot switch its ports one by one."""

    kind = "USB hub"
    kinds = "USB hubs"
    stall_hint = ": the hub may not switch port power, or may not have that port"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_number(self.port, "port", "a port of the hub", 1, 255)
        self._power_bit = PORT_POWER_BIT

    def _is_candidate(self, device: usb.core.Device) -> bool:
        return bool(device.bDeviceClass == HUB_CLASS)

    def _setup(self, device: usb.core.Device) -> None:
        """Read the hub descriptor: check the port exists and that the hub switches ports one by one."""
        superspeed = device.bcdUSB >= 0x0300
        descriptor_type = SUPERSPEED_HUB_DESCRIPTOR if superspeed else HUB_DESCRIPTOR
        length = SUPERSPEED_HUB_DESCRIPTOR_LENGTH if superspeed else HUB_DESCRIPTOR_LENGTH
        descriptor = self._transfer(
            device, "GET_DESCRIPTOR (hub)", GET_HUB_REQUEST, GET_DESCRIPTOR, descriptor_type << 8, 0, length
        )
        if len(descriptor) < 5 or descriptor[1] != descriptor_type:
            raise OSError(f"USB hub {describe(device)} sent a malformed hub descriptor: {bytes(descriptor).hex(' ')}")
        ports = descriptor[2]
        characteristics = descriptor[3] | descriptor[4] << 8
        if self.port > ports:
            raise DeviceMismatch(
                f"USB hub {describe(device)} has no port {self.port}: its ports are 1 to {ports}; "
                "fix port in the config"
            )
        switching = _SWITCHING[characteristics & 0b11]
        if switching != "per-port":
            how = (
                "switches the power of all its ports together (ganged)"
                if switching == "ganged"
                else "does not switch port power at all"
            )
            if not self.force:
                raise DeviceMismatch(
                    f"USB hub {describe(device)} {how}, so port {self.port} cannot be switched alone: "
                    "use a hub with per-port power switching (uhubctl's documentation lists some), "
                    "or set force: true if this hub's descriptor is wrong"
                )
            self.logger.warning("USB hub %s %s; switching port %d anyway (force)", describe(device), how, self.port)
        self._power_bit = SUPERSPEED_PORT_POWER_BIT if superspeed else PORT_POWER_BIT

    @export
    def on(self) -> None:
        self._control(
            f"SET_FEATURE PORT_POWER on port {self.port}", SET_PORT_REQUEST, SET_FEATURE, PORT_POWER, self.port
        )
        self.logger.info("port %d: power on", self.port)

    @export
    def off(self) -> None:
        self._control(
            f"CLEAR_FEATURE PORT_POWER on port {self.port}", SET_PORT_REQUEST, CLEAR_FEATURE, PORT_POWER, self.port
        )
        self.logger.info("port %d: power off", self.port)

    @export
    def state(self) -> bool:
        with self._lock:
            status = self._control(
                f"GET_STATUS of port {self.port}", GET_PORT_REQUEST, GET_STATUS, 0, self.port, PORT_STATUS_LENGTH
            )
            if len(status) < 2:
                raise OSError(f"USB hub {describe(self._open())} sent {len(status)} bytes of port status instead of 4")
            return bool((status[0] | status[1] << 8) & self._power_bit)

    @export
    def read(self) -> Iterator[PowerReading]:
        raise MeasurementNotSupported("a USB hub switches the power of its ports but does not measure it")
        yield  # a generator, like every read
