"""UsbHubPower on pyusb's real code path, over a fake backend: the exact hub class requests, and every error."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
import usb.backend.libusb1
import usb.backend.openusb
from click.testing import CliRunner
from jumpstarter_driver_power.common import MeasurementNotSupported
from jumpstarter_driver_power.usbhub import UsbHubPower

from jumpstarter.client import DriverConnectionError, DriverError, DriverInvalidArgument, DriverTimeout
from jumpstarter.testing import serve
from testsupport.usb import FakeBackend, FakeDevice, FakeHub, Transfer

DESCRIPTOR = Transfer(0xA0, 6, 0x2900, 0, 71)  # GET_DESCRIPTOR, hub descriptor (USB 2)
UDEV_RULE = 'SUBSYSTEM=="usb", ATTR{idVendor}=="2109", ATTR{idProduct}=="2817", MODE="0660", GROUP="plugdev"'


def set_power(port: int) -> Transfer:
    return Transfer(0x23, 3, 8, port, b"")  # SET_FEATURE PORT_POWER


def clear_power(port: int) -> Transfer:
    return Transfer(0x23, 1, 8, port, b"")  # CLEAR_FEATURE PORT_POWER


def get_status(port: int) -> Transfer:
    return Transfer(0xA3, 0, 0, port, 4)  # GET_STATUS of a port, 4 bytes


def lab(*hubs: FakeDevice) -> FakeBackend:
    """A bus with a root hub, an FTDI adapter (no hub) and `hubs`."""
    root = FakeHub(vendor=0x1D6B, product=0x0002, address=1, ports=2)
    ftdi = FakeDevice(vendor=0x0403, product=0x6001, address=9, port_numbers=(2,))
    return FakeBackend(root, ftdi, *hubs)


def test_on_off_and_state_send_the_hub_class_requests() -> None:
    hub = FakeHub(address=5, port_numbers=(1,))
    backend = lab(hub)
    with serve(UsbHubPower(usb_id="2109:2817", port=2).use_backend(backend)) as power:
        power.on()
        # The first operation reads the hub descriptor (ports, per-port switching), then switches.
        assert hub.transfers == [DESCRIPTOR, set_power(2)]
        assert hub.powered == {1: True, 2: True, 3: True, 4: True}
        hub.transfers.clear()

        power.off()
        assert hub.transfers == [clear_power(2)]
        assert hub.powered[2] is False and hub.powered[1] is True
        assert power.state() is False
        power.on()
        assert power.state() is True
        assert hub.transfers == [clear_power(2), get_status(2), set_power(2), get_status(2)]
        assert hub.timeouts == [1000] * 6  # the default timeout, 1 s, in pyusb's milliseconds
        assert len(backend.open_handles) == 1
    assert backend.open_handles == []  # the session closed the driver, which let the hub go


def test_a_usb3_hub_uses_the_superspeed_descriptor_and_power_bit() -> None:
    hub = FakeHub(address=5, port_numbers=(1,), superspeed=True, vendor=0x2109, product=0x0817, ports=4)
    with serve(UsbHubPower(usb_id="2109:0817", port=4).use_backend(lab(hub))) as power:
        power.off()
        assert power.state() is False
        power.on()
        assert power.state() is True
    assert hub.transfers == [
        Transfer(0xA0, 6, 0x2A00, 0, 12),
        clear_power(4),
        get_status(4),
        set_power(4),
        get_status(4),
    ]


def test_the_hub_is_found_by_its_path() -> None:
    first = FakeHub(address=5, port_numbers=(1,))
    second = FakeHub(address=6, port_numbers=(1, 4))
    with serve(UsbHubPower(path="1-1.4", port=1).use_backend(lab(first, second))) as power:
        power.off()
    assert first.transfers == []
    assert second.transfers == [DESCRIPTOR, clear_power(1)]


def test_the_hub_is_found_by_its_serial_number() -> None:
    first = FakeHub(address=5, port_numbers=(1,), serial="A1")
    second = FakeHub(address=6, port_numbers=(2,), serial="B2")
    backend = lab(first, second)
    with serve(UsbHubPower(usb_id="2109:2817", serial="B2", port=3).use_backend(backend)) as power:
        power.off()
    read_serial = [Transfer(0x80, 6, 0x0300, 0, 254), Transfer(0x80, 6, 0x0303, 0x0409, 254)]
    assert first.transfers == read_serial
    assert second.transfers == [*read_serial, DESCRIPTOR, clear_power(3)]
    assert (first.powered[3], second.powered[3]) == (True, False)
    assert backend.open_handles == []


def test_two_hubs_that_match_are_refused_with_how_to_choose() -> None:
    first = FakeHub(address=5, port_numbers=(1,), serial="A1")
    second = FakeHub(address=6, port_numbers=(2,))
    with (
        serve(UsbHubPower(usb_id="2109:2817", port=1).use_backend(lab(first, second))) as power,
        pytest.raises(DriverInvalidArgument) as caught,
    ):
        power.on()
    assert str(caught.value) == (
        "2 USB hubs match usb_id 2109:2817: 1-1 [2109:2817] serial 'A1', 1-2 [2109:2817] (no serial number); "
        "set serial or path in the config to choose one"
    )
    assert first.class_transfers() == second.class_transfers() == []


def test_a_missing_hub_is_a_connection_error_listing_the_hubs_present() -> None:
    hub = FakeHub(address=5, port_numbers=(1,), serial="A1")
    with (
        serve(UsbHubPower(usb_id="05e3:0610", port=1).use_backend(lab(hub))) as power,
        pytest.raises(DriverConnectionError) as caught,
    ):
        power.on()
    assert str(caught.value) == (
        "no USB hub matches usb_id 05e3:0610; USB hubs present: 1 [1d6b:0002], 1-1 [2109:2817]. "
        "Check that it is plugged in and powered (lsusb -t shows the tree), and the config"
    )
    with (
        serve(UsbHubPower(usb_id="2109:2817", serial="Z9", port=1).use_backend(lab(hub))) as power,
        pytest.raises(DriverConnectionError) as caught,
    ):
        power.on()
    assert str(caught.value).startswith(
        "no USB hub matches usb_id 2109:2817 and serial 'Z9'; USB hubs present: 1 [1d6b:0002], 1-1 [2109:2817] "
        "(the serial numbers of those matching the other settings: 'A1')."
    )
    assert hub.class_transfers() == []


def test_a_hub_without_per_port_switching_is_refused_unless_forced() -> None:
    ganged = FakeHub(address=5, port_numbers=(1,), switching="ganged")
    with serve(UsbHubPower(usb_id="2109:2817", port=2).use_backend(lab(ganged))) as power:
        with pytest.raises(DriverInvalidArgument) as caught:
            power.off()
        assert "where the driver raised DeviceMismatch" in caught.value.__notes__[0]
        assert str(caught.value) == (
            "USB hub 1-1 [2109:2817] switches the power of all its ports together (ganged), so port 2 cannot be "
            "switched alone: use a hub with per-port power switching (uhubctl's documentation lists some), "
            "or set force: true if this hub's descriptor is wrong"
        )
    assert ganged.transfers == [DESCRIPTOR]  # nothing was switched
    assert ganged.powered[2] is True

    none = FakeHub(address=5, port_numbers=(1,), switching="none")
    with (
        serve(UsbHubPower(usb_id="2109:2817", port=2).use_backend(lab(none))) as power,
        pytest.raises(DriverError, match="does not switch port power at all"),
    ):
        power.off()

    with serve(UsbHubPower(usb_id="2109:2817", port=2, force=True).use_backend(lab(ganged))) as power:
        power.off()
    assert ganged.transfers == [DESCRIPTOR, DESCRIPTOR, clear_power(2)]


def test_a_port_the_hub_does_not_have_is_refused() -> None:
    hub = FakeHub(address=5, port_numbers=(1,), ports=4)
    with (
        serve(UsbHubPower(usb_id="2109:2817", port=7).use_backend(lab(hub))) as power,
        pytest.raises(DriverInvalidArgument) as caught,
    ):
        power.on()
    assert str(caught.value) == ("USB hub 1-1 [2109:2817] has no port 7: its ports are 1 to 4; fix port in the config")
    assert hub.transfers == [DESCRIPTOR]


def test_no_permission_names_the_udev_rule() -> None:
    hub = FakeHub(address=5, port_numbers=(1,), serial="A1")
    hub.deny_access = True
    with serve(UsbHubPower(usb_id="2109:2817", port=1).use_backend(lab(hub))) as power:
        with pytest.raises(DriverConnectionError) as caught:
            power.on()
        message = str(caught.value)
        assert message.startswith("no permission to open USB hub 1-1 [2109:2817] for GET_DESCRIPTOR (hub): ")
        assert f"add the udev rule '{UDEV_RULE}' to a file in /etc/udev/rules.d/" in message
        assert "sudo udevadm control --reload-rules && sudo udevadm trigger" in message
        assert "where the driver raised NoPermission" in caught.value.__notes__[0]
        # Once the rule is in place, the same driver works.
        hub.deny_access = False
        power.on()
    # Reading the serial number needs the same permission.
    hub.deny_access = True
    with (
        serve(UsbHubPower(serial="A1", port=1).use_backend(lab(hub))) as power,
        pytest.raises(DriverError, match=re.escape(f"for reading the serial number: add the udev rule '{UDEV_RULE}'")),
    ):
        power.on()


def test_a_stalled_transfer_is_an_error_and_the_hub_stays_usable() -> None:
    hub = FakeHub(address=5, port_numbers=(1,))
    with serve(UsbHubPower(usb_id="2109:2817", port=2).use_backend(lab(hub))) as power:
        power.off()
        hub.stall_requests.add((0x23, 3))
        with pytest.raises(DriverError) as caught:
            power.on()
        assert str(caught.value) == (
            "USB hub 1-1 [2109:2817] refused SET_FEATURE PORT_POWER on port 2 (the control transfer stalled): "
            "the hub may not switch port power, or may not have that port"
        )
        assert hub.powered[2] is False
        hub.stall_requests.clear()
        power.on()
    assert hub.transfers == [DESCRIPTOR, clear_power(2), set_power(2), set_power(2)]


def test_a_stalled_descriptor_request_is_reported() -> None:
    hub = FakeHub(address=5, port_numbers=(1,))
    hub.stall_requests.add((0xA0, 6))
    with (
        serve(UsbHubPower(usb_id="2109:2817", port=2).use_backend(lab(hub))) as power,
        pytest.raises(DriverError, match=r"refused GET_DESCRIPTOR \(hub\) \(the control transfer stalled\)"),
    ):
        power.on()
    assert hub.powered[2] is True


def test_a_hub_that_goes_away_is_found_again_when_it_comes_back() -> None:
    hub = FakeHub(address=5, port_numbers=(1,))
    backend = lab(hub)
    with serve(UsbHubPower(usb_id="2109:2817", port=2).use_backend(backend)) as power:
        power.on()
        hub.gone = True
        with pytest.raises(DriverConnectionError) as caught:
            power.off()
        assert str(caught.value) == (
            "USB hub 1-1 [2109:2817] went away during CLEAR_FEATURE PORT_POWER on port 2: "
            "check that it is still plugged in and powered"
        )
        assert backend.open_handles == []  # the stale handle was let go
        with pytest.raises(DriverConnectionError, match="no USB hub matches usb_id 2109:2817"):
            power.off()
        hub.gone = False
        power.off()
        assert hub.powered[2] is False
    # The CLEAR_FEATURE to the unplugged hub never went out; the hub was then found and checked again.
    assert hub.transfers == [DESCRIPTOR, set_power(2), DESCRIPTOR, clear_power(2)]
    assert backend.open_handles == []


def test_a_hub_that_does_not_answer_times_out() -> None:
    hub = FakeHub(address=5, port_numbers=(1,))
    with serve(UsbHubPower(usb_id="2109:2817", port=2, timeout=0.25).use_backend(lab(hub))) as power:
        power.on()
        hub.hang = True
        with pytest.raises(DriverTimeout) as caught:
            power.state()
        assert str(caught.value) == "USB hub 1-1 [2109:2817] did not answer GET_STATUS of port 2 within 0.25 s"
        hub.hang = False
        assert power.state() is True
    assert hub.timeouts == [250] * 4


def test_the_hub_cannot_measure() -> None:
    hub = FakeHub(address=5, port_numbers=(1,))
    with (
        serve(UsbHubPower(usb_id="2109:2817", port=2).use_backend(lab(hub))) as power,
        pytest.raises(MeasurementNotSupported) as caught,
    ):
        list(power.read())
    assert str(caught.value) == (
        "the power driver cannot measure voltage or current: "
        "a USB hub switches the power of its ports but does not measure it"
    )
    assert hub.transfers == []


def test_concurrent_calls_find_the_hub_once() -> None:
    hub = FakeHub(address=5, port_numbers=(1,))
    backend = lab(hub)
    with serve(UsbHubPower(usb_id="2109:2817", port=1).use_backend(backend)) as power, ThreadPoolExecutor(8) as pool:
        states = list(pool.map(lambda _: power.state(), range(16)))
    assert states == [True] * 16
    assert hub.transfers == [DESCRIPTOR, *[get_status(1)] * 16]
    assert backend.open_handles == []


def test_without_a_usb_library_the_error_says_what_to_install() -> None:
    if any(module.get_backend() is not None for module in (usb.backend.libusb1, usb.backend.openusb)):
        pytest.skip("this machine has a USB library: the error cannot happen here")
    with serve(UsbHubPower(usb_id="2109:2817", port=1)) as power, pytest.raises(DriverError) as caught:
        power.on()
    assert str(caught.value) == (
        "pyusb finds no USB library on the exporter: install libusb 1.0 "
        "(apt install libusb-1.0-0, dnf install libusb1, brew install libusb)"
    )


def test_only_a_pyusb_backend_can_be_injected() -> None:
    with pytest.raises(TypeError, match=r"the backend must be a usb\.backend\.IBackend, not 'libusb1'"):
        UsbHubPower(path="1-1", port=1).use_backend("libusb1")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"usb_id": "2109-2817", "port": 1}, "usb_id must be vendor:product in hexadecimal, as lsusb shows it"),
        ({"path": "usb1/1", "port": 1}, "path must be a bus and the ports down from it, such as 1-1.4"),
        ({"port": 1}, "UsbHubPower needs usb_id, serial or path to find its USB hub: set at least one"),
        ({"path": "1-1", "port": 0}, "port must be the number of a port of the hub, from 1 to 255, not 0"),
        ({"path": "1-1", "port": 1, "timeout": 0}, "timeout must be a number of seconds above 0, not 0"),
        ({"path": "1-1", "port": 1, "serial": ""}, "serial must be the device's serial number as text"),
    ],
)
def test_bad_settings_are_refused_when_the_driver_is_created(config: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        UsbHubPower(**config)


def test_cli() -> None:
    hub = FakeHub(address=5, port_numbers=(1,))
    with serve(UsbHubPower(path="1-1", port=3).use_backend(lab(hub))) as power:
        cli = power.cli()
        runner = CliRunner()
        assert (runner.invoke(cli, ["off"]).output, hub.powered[3]) == ("power off\n", False)
        assert runner.invoke(cli, ["state"]).output == "off\n"
        assert (runner.invoke(cli, ["on"]).output, hub.powered[3]) == ("power on\n", True)
        assert runner.invoke(cli, ["state"]).output == "on\n"
        hub.transfers.clear()
        result = runner.invoke(cli, ["cycle", "--wait", "0"])
        assert (result.exit_code, result.output) == (0, "power cycled (off for 0 s)\n")
        assert hub.transfers == [clear_power(3), set_power(3)]
        result = runner.invoke(cli, ["read"])
        assert (result.exit_code, result.output) == (
            1,
            "Error: the power driver cannot measure voltage or current: "
            "a USB hub switches the power of its ports but does not measure it\n",
        )
