"""The pyusb drivers with a fake USB bus, for exporter configurations that `jmp shell` runs in its own process.

A test cannot hand a backend object to a driver that another process builds from YAML, so
these subclasses attach the fake backend themselves (their `type:` is this module's dotted
path, with tests/support on PYTHONPATH). The fake devices live as long as the
driver, and `state` reads back what `on` and `off` did to them.
"""

from __future__ import annotations

from dataclasses import dataclass

from jumpstarter_driver_power.usbhub import UsbHubPower
from jumpstarter_driver_power.usbrelay import UsbRelayPower

from testsupport.usb import FakeBackend, FakeHub, FakeRelayBoard


@dataclass(kw_only=True)
class FakeBusUsbHubPower(UsbHubPower):
    """UsbHubPower on a bus with one 4-port hub (2109:2817) on bus 1, port 1."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.use_backend(FakeBackend(FakeHub(address=5, port_numbers=(1,))))


@dataclass(kw_only=True)
class FakeBusUsbRelayPower(UsbRelayPower):
    """UsbRelayPower on a bus with one USBRelay2 board, serial QAAMZ, on bus 1, port 3."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.use_backend(FakeBackend(FakeRelayBoard(address=7, port_numbers=(3,), relays=2, board_serial="QAAMZ")))
