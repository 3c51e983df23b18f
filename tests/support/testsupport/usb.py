"""A fake pyusb backend (``usb.backend.IBackend``) with USB hubs and HID relay boards behind it.

The drivers run pyusb's real code (``usb.core.find``, ``Device.ctrl_transfer``, interface
claiming, string descriptors); only the backend, the layer that would call libusb, is
fake. Every control transfer that reaches it is recorded on its device, and devices can
be told to refuse access, stall, hang or go away, with the errors libusb 1.0 raises.
"""

from __future__ import annotations

import array
import errno
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from usb.backend import IBackend
from usb.core import USBError, USBTimeoutError

# The errors pyusb's libusb 1.0 backend raises, with libusb's codes and messages.
ACCESS_DENIED = ("Access denied (insufficient permissions)", -3, errno.EACCES)
NO_DEVICE = ("No such device (it may have been disconnected)", -4, errno.ENODEV)
BUSY = ("Resource busy", -6, errno.EBUSY)
TIMED_OUT = ("Operation timed out", -7, errno.ETIMEDOUT)
PIPE = ("Pipe error", -9, errno.EPIPE)


@dataclass(frozen=True)
class Transfer:
    """One control transfer: `data` is what the host sent (OUT) or the length it asked for (IN)."""

    request_type: int
    request: int
    value: int
    index: int
    data: bytes | int


class Stall(Exception):
    """Raised by a fake device that does not support a request: the backend answers EPIPE."""


class FakeDevice:
    """A USB device: descriptors, string descriptors, and what the tests make it do."""

    def __init__(
        self,
        *,
        vendor: int,
        product: int,
        bus: int = 1,
        address: int,
        port_numbers: tuple[int, ...] = (),
        device_class: int = 0,
        bcd_usb: int = 0x0200,
        manufacturer: str | None = None,
        product_name: str | None = None,
        serial: str | None = None,
    ) -> None:
        self.vendor, self.product = vendor, product
        self.bus, self.address, self.port_numbers = bus, address, port_numbers
        self.device_class, self.bcd_usb = device_class, bcd_usb
        self.strings = {index: text for index, text in ((1, manufacturer), (2, product_name), (3, serial)) if text}
        self.transfers: list[Transfer] = []
        self.timeouts: list[int] = []
        # What the tests make the device do.
        self.deny_access = False
        self.gone = False
        self.hang = False
        self.stall_requests: set[tuple[int, int]] = set()  # (request_type, request)
        # The kernel's drivers, by interface: claiming an interface a kernel driver holds fails.
        self.kernel_drivers: set[int] = set()
        self.claimed: set[int] = set()

    def descriptor(self) -> SimpleNamespace:
        return SimpleNamespace(
            bLength=18,
            bDescriptorType=1,
            bcdUSB=self.bcd_usb,
            bDeviceClass=self.device_class,
            bDeviceSubClass=0,
            bDeviceProtocol=0,
            bMaxPacketSize0=64,
            idVendor=self.vendor,
            idProduct=self.product,
            bcdDevice=0x0100,
            iManufacturer=1 if 1 in self.strings else 0,
            iProduct=2 if 2 in self.strings else 0,
            iSerialNumber=3 if 3 in self.strings else 0,
            bNumConfigurations=1,
            address=self.address,
            bus=self.bus,
            port_number=self.port_numbers[-1] if self.port_numbers else None,
            port_numbers=self.port_numbers or None,
            speed=3,
        )

    def class_transfers(self) -> list[Transfer]:
        """The transfers other than the standard ones (string descriptors): what the driver's protocol sent."""
        return [transfer for transfer in self.transfers if transfer.request_type & 0x60]

    def answer(self, transfer: Transfer) -> bytes:
        if transfer.request_type == 0x80 and transfer.request == 6 and transfer.value >> 8 == 3:
            index = transfer.value & 0xFF
            if index == 0:
                return bytes([4, 3, 0x09, 0x04])  # one language: English (US)
            if index in self.strings:
                encoded = self.strings[index].encode("utf-16-le")
                return bytes([2 + len(encoded), 3]) + encoded
        return self.control(transfer)

    def control(self, transfer: Transfer) -> bytes:
        raise Stall


class FakeHub(FakeDevice):
    """A USB 2 or USB 3 hub whose descriptor announces per-port, ganged or no power switching."""

    SWITCHING = {"per-port": 0x0009, "ganged": 0x0000, "none": 0x0002}  # with over-current bits

    def __init__(
        self,
        *,
        ports: int = 4,
        switching: str = "per-port",
        superspeed: bool = False,
        vendor: int = 0x2109,
        product: int = 0x2817,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            vendor=vendor, product=product, device_class=9, bcd_usb=0x0300 if superspeed else 0x0210, **kwargs
        )
        self.ports, self.switching, self.superspeed = ports, switching, superspeed
        self.powered = dict.fromkeys(range(1, ports + 1), True)

    def hub_descriptor(self) -> bytes:
        characteristics = self.SWITCHING[self.switching]
        if self.superspeed:
            return bytes([12, 0x2A, self.ports, characteristics & 0xFF, characteristics >> 8, 50, 0, 0, 0, 0, 0, 0])
        bitmap = (self.ports + 1 + 7) // 8
        header = bytes([7 + 2 * bitmap, 0x29, self.ports, characteristics & 0xFF, characteristics >> 8, 50, 100])
        return header + bytes(bitmap) + b"\xff" * bitmap

    def control(self, transfer: Transfer) -> bytes:
        kind, request, value, port = transfer.request_type, transfer.request, transfer.value, transfer.index
        descriptor_type = 0x2A if self.superspeed else 0x29
        if (kind, request, value, port) == (0xA0, 6, descriptor_type << 8, 0):
            return self.hub_descriptor()
        if port not in self.powered:
            raise Stall
        if kind == 0x23 and request in (1, 3) and value == 8 and transfer.data == b"":
            self.powered[port] = request == 3
            return b""
        if (kind, request, value, transfer.data) == (0xA3, 0, 0, 4):
            power_bit = 0x0200 if self.superspeed else 0x0100
            status = 0x0001 | (power_bit if self.powered[port] else 0)  # connected, and maybe powered
            return status.to_bytes(2, "little") + bytes(2)
        raise Stall


class FakeRelayBoard(FakeDevice):
    """A HID "USBRelay" board: feature reports switch relays and report the state and the serial number."""

    def __init__(self, *, relays: int = 2, board_serial: str = "QAAMZ", address: int, **kwargs: Any) -> None:
        kwargs.setdefault("product_name", f"USBRelay{relays}")
        kwargs.setdefault("manufacturer", "www.dcttech.com")
        super().__init__(vendor=0x16C0, product=0x05DF, address=address, **kwargs)
        self.relays, self.board_serial = relays, board_serial
        self.mask = 0
        self.kernel_drivers = {0}  # usbhid holds the interface, as on Linux

    def control(self, transfer: Transfer) -> bytes:
        if 0 not in self.claimed:
            raise AssertionError("a HID class request reached the board without its interface claimed")
        if (transfer.request_type, transfer.request, transfer.value, transfer.index) == (0x21, 9, 0x0300, 0):
            data = transfer.data
            assert isinstance(data, bytes) and len(data) == 8, f"a feature report is 8 bytes, not {data!r}"
            command, relay = data[0], data[1]
            if command == 0xFF and 1 <= relay <= self.relays:
                self.mask |= 1 << (relay - 1)
            elif command == 0xFD and 1 <= relay <= self.relays:
                self.mask &= ~(1 << (relay - 1))
            elif command == 0xFE:
                self.mask = (1 << self.relays) - 1
            elif command == 0xFC:
                self.mask = 0
            return b""
        if (transfer.request_type, transfer.request, transfer.value, transfer.index) == (0xA1, 1, 0x0300, 0):
            return self.board_serial.encode().ljust(5, b"\0")[:5] + bytes([0, 0, self.mask])
        raise Stall


class FakeHandle:
    def __init__(self, device: FakeDevice) -> None:
        self.device = device


class FakeBackend(IBackend):
    """The lowest layer of pyusb, faked: what ``usb.core.find(backend=...)`` enumerates and talks to."""

    def __init__(self, *devices: FakeDevice) -> None:
        super().__init__()
        self.devices = list(devices)
        self.open_handles: list[FakeHandle] = []

    def _live(self, handle: FakeHandle) -> FakeDevice:
        if handle not in self.open_handles:
            raise AssertionError("the driver used a closed handle")
        if handle.device.gone:
            raise USBError(*NO_DEVICE)
        return handle.device

    def enumerate_devices(self) -> list[FakeDevice]:
        return [device for device in self.devices if not device.gone]

    def get_parent(self, dev: FakeDevice) -> None:
        return None

    def get_device_descriptor(self, dev: FakeDevice) -> SimpleNamespace:
        return dev.descriptor()

    def open_device(self, dev: FakeDevice) -> FakeHandle:
        if dev.gone:
            raise USBError(*NO_DEVICE)
        if dev.deny_access:
            raise USBError(*ACCESS_DENIED)
        handle = FakeHandle(dev)
        self.open_handles.append(handle)
        return handle

    def close_device(self, dev_handle: FakeHandle) -> None:
        self.open_handles.remove(dev_handle)

    def claim_interface(self, dev_handle: FakeHandle, intf: int) -> None:
        device = self._live(dev_handle)
        if intf in device.kernel_drivers:
            raise USBError(*BUSY)
        device.claimed.add(intf)

    def release_interface(self, dev_handle: FakeHandle, intf: int) -> None:
        dev_handle.device.claimed.discard(intf)

    def is_kernel_driver_active(self, dev_handle: FakeHandle, intf: int) -> bool:
        return intf in self._live(dev_handle).kernel_drivers

    def detach_kernel_driver(self, dev_handle: FakeHandle, intf: int) -> None:
        self._live(dev_handle).kernel_drivers.discard(intf)

    def attach_kernel_driver(self, dev_handle: FakeHandle, intf: int) -> None:
        device = self._live(dev_handle)
        if intf in device.claimed:
            raise USBError(*BUSY)
        device.kernel_drivers.add(intf)

    def ctrl_transfer(
        self,
        dev_handle: FakeHandle,
        bmRequestType: int,
        bRequest: int,
        wValue: int,
        wIndex: int,
        data: array.array[int],
        timeout: int,
    ) -> int:
        device = self._live(dev_handle)
        device_to_host = bool(bmRequestType & 0x80)
        transfer = Transfer(bmRequestType, bRequest, wValue, wIndex, len(data) if device_to_host else bytes(data))
        device.transfers.append(transfer)
        device.timeouts.append(timeout)
        if device.hang:
            raise USBTimeoutError(*TIMED_OUT)
        if (bmRequestType, bRequest) in device.stall_requests:
            raise USBError(*PIPE)
        try:
            answer = device.answer(transfer)
        except Stall:
            raise USBError(*PIPE) from None
        if not device_to_host:
            return len(data)
        count = min(len(answer), len(data))
        data[:count] = array.array("B", answer[:count])
        return count
