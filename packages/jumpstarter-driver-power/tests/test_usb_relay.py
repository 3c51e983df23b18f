"""UsbRelayPower on pyusb's real code path, over a fake backend: the exact HID feature reports, and every error."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from jumpstarter_driver_power.common import MeasurementNotSupported
from jumpstarter_driver_power.usbrelay import UsbRelayPower

from jumpstarter.client import DriverConnectionError, DriverError, DriverInvalidArgument, DriverTimeout
from jumpstarter.testing import serve
from testsupport.usb import FakeBackend, FakeDevice, FakeHandle, FakeRelayBoard, Transfer

GET_REPORT = Transfer(0xA1, 0x01, 0x0300, 0, 8)
UDEV_RULE = 'SUBSYSTEM=="usb", ATTR{idVendor}=="16c0", ATTR{idProduct}=="05df", MODE="0660", GROUP="plugdev"'
# The product name, read when the board is set up: the language ids, then string 2.
READ_PRODUCT = [Transfer(0x80, 6, 0x0300, 0, 254), Transfer(0x80, 6, 0x0302, 0x0409, 254)]


def set_report(*data: int) -> Transfer:
    return Transfer(0x21, 0x09, 0x0300, 0, bytes(data).ljust(8, b"\0"))


def lab(*boards: FakeDevice) -> FakeBackend:
    keyboard = FakeDevice(vendor=0x046D, product=0xC31C, address=2, port_numbers=(1,))
    return FakeBackend(keyboard, *boards)


def test_on_off_and_state_send_feature_reports() -> None:
    board = FakeRelayBoard(address=7, port_numbers=(3,), relays=2)
    backend = lab(board)
    with serve(UsbRelayPower(relay=2).use_backend(backend)) as power:
        power.on()
        assert board.transfers == [*READ_PRODUCT, set_report(0xFF, 2)]
        assert board.mask == 0b10
        assert board.kernel_drivers == set() and board.claimed == {0}  # taken from usbhid while in use
        assert power.state() is True
        power.off()
        assert board.mask == 0
        assert power.state() is False
        assert board.transfers[2:] == [set_report(0xFF, 2), GET_REPORT, set_report(0xFD, 2), GET_REPORT]
    # Closing gives the board back to the kernel's HID driver and closes the handle.
    assert board.kernel_drivers == {0} and board.claimed == set()
    assert backend.open_handles == []


def test_state_reads_the_relay_s_own_bit() -> None:
    board = FakeRelayBoard(address=7, port_numbers=(3,), relays=8)
    board.mask = 0b1111_1011  # every relay but relay 3 is on
    with (
        serve(UsbRelayPower(relay=3).use_backend(lab(board))) as three,
        serve(UsbRelayPower(relay=4).use_backend(lab(board))) as four,
    ):
        assert (three.state(), four.state()) == (False, True)
        three.on()
        four.off()
        assert (three.state(), four.state()) == (True, False)
    assert board.mask == 0b1111_0111


def test_boards_are_told_apart_by_the_serial_in_their_report() -> None:
    first = FakeRelayBoard(address=7, port_numbers=(3,), board_serial="AAAAA")
    second = FakeRelayBoard(address=8, port_numbers=(4,), board_serial="BBBBB")
    backend = lab(first, second)
    with serve(UsbRelayPower(serial="BBBBB", relay=1).use_backend(backend)) as power:
        power.on()
        # The other board was asked for its report, then given back to the kernel.
        assert first.transfers == [GET_REPORT]
        assert first.kernel_drivers == {0} and first.claimed == set()
        assert second.transfers == [GET_REPORT, *READ_PRODUCT, set_report(0xFF, 1)]
    assert (first.mask, second.mask) == (0, 1)
    assert backend.open_handles == []


def test_the_board_is_found_by_its_path() -> None:
    first = FakeRelayBoard(address=7, port_numbers=(3,), board_serial="AAAAA")
    second = FakeRelayBoard(address=8, port_numbers=(3, 2), board_serial="BBBBB")
    with serve(UsbRelayPower(path="1-3.2").use_backend(lab(first, second))) as power:
        power.on()
    assert first.transfers == []
    assert second.mask == 1


def test_two_boards_are_refused_with_their_serials() -> None:
    first = FakeRelayBoard(address=7, port_numbers=(3,), board_serial="AAAAA")
    second = FakeRelayBoard(address=8, port_numbers=(4,), board_serial="BBBBB")
    backend = lab(first, second)
    with serve(UsbRelayPower().use_backend(backend)) as power, pytest.raises(DriverInvalidArgument) as caught:
        power.on()
    assert str(caught.value) == (
        "2 USBRelay boards match usb_id 16c0:05df: 1-3 [16c0:05df] serial 'AAAAA', 1-4 [16c0:05df] serial 'BBBBB'; "
        "set serial or path in the config to choose one"
    )
    assert (first.mask, second.mask) == (0, 0)
    assert first.kernel_drivers == second.kernel_drivers == {0}
    assert backend.open_handles == []


def test_a_missing_board_is_a_connection_error() -> None:
    board = FakeRelayBoard(address=7, port_numbers=(3,), board_serial="AAAAA")
    with (
        serve(UsbRelayPower(serial="ZZZZZ").use_backend(lab(board))) as power,
        pytest.raises(DriverConnectionError) as caught,
    ):
        power.on()
    assert str(caught.value) == (
        "no USBRelay board matches usb_id 16c0:05df and serial 'ZZZZZ'; USBRelay boards present: "
        "1-3 [16c0:05df] (the serial numbers of those matching the other settings: 'AAAAA'). "
        "Check that it is plugged in and powered (lsusb -t shows the tree), and the config"
    )


def test_a_relay_the_board_does_not_have_is_refused() -> None:
    board = FakeRelayBoard(address=7, port_numbers=(3,), relays=2)
    with (
        serve(UsbRelayPower(relay=3).use_backend(lab(board))) as power,
        pytest.raises(DriverInvalidArgument) as caught,
    ):
        power.on()
    assert str(caught.value) == (
        "USBRelay board 1-3 [16c0:05df] (USBRelay2) has no relay 3: its relays are 1 to 2; fix relay in the config"
    )
    assert board.class_transfers() == []
    assert board.kernel_drivers == {0}  # given back at once


def test_a_board_with_another_product_name_is_driven_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    board = FakeRelayBoard(address=7, port_numbers=(3,), relays=2, product_name="HIDRelay")
    with serve(UsbRelayPower(relay=2).use_backend(lab(board))) as power:
        power.on()
    assert board.mask == 0b10
    assert "calls itself 'HIDRelay', not USBRelayN: driving it as a relay board" in caplog.text


def test_without_kernel_drivers_to_detach_the_board_still_works() -> None:
    class NoKernelDrivers(FakeBackend):
        def is_kernel_driver_active(self, dev_handle: FakeHandle, intf: int) -> bool:
            raise NotImplementedError("is_kernel_driver_active")  # as pyusb's backends on Windows and macOS

    board = FakeRelayBoard(address=7, port_numbers=(3,))
    board.kernel_drivers = set()
    with serve(UsbRelayPower().use_backend(NoKernelDrivers(board))) as power:
        power.on()
    assert board.mask == 1 and board.kernel_drivers == set()


def test_no_permission_names_the_udev_rule() -> None:
    board = FakeRelayBoard(address=7, port_numbers=(3,))
    board.deny_access = True
    with serve(UsbRelayPower().use_backend(lab(board))) as power:
        with pytest.raises(DriverConnectionError) as caught:
            power.on()
        assert str(caught.value) == (
            "no permission to open USBRelay board 1-3 [16c0:05df] for detaching the kernel's HID driver: "
            f"add the udev rule '{UDEV_RULE}' to a file in /etc/udev/rules.d/ (such as 50-jumpstarter-power.rules), "
            "run 'sudo udevadm control --reload-rules && sudo udevadm trigger', "
            "and add the exporter's user to the plugdev group"
        )
    with (
        serve(UsbRelayPower(serial="QAAMZ").use_backend(lab(board))) as power,
        pytest.raises(DriverError, match=re.escape(f"add the udev rule '{UDEV_RULE}'")),
    ):
        power.state()
    assert board.transfers == []


def test_a_stalled_report_is_an_error_and_the_board_stays_usable() -> None:
    board = FakeRelayBoard(address=7, port_numbers=(3,))
    with serve(UsbRelayPower().use_backend(lab(board))) as power:
        board.stall_requests.add((0x21, 0x09))
        with pytest.raises(DriverError) as caught:
            power.on()
        assert str(caught.value) == (
            "USBRelay board 1-3 [16c0:05df] refused SET_REPORT switching relay 1 on "
            "(the control transfer stalled): is it a USBRelay board?"
        )
        board.stall_requests.clear()
        power.on()
    assert board.class_transfers() == [set_report(0xFF, 1), set_report(0xFF, 1)]
    assert board.mask == 1


def test_a_board_that_goes_away_or_hangs() -> None:
    board = FakeRelayBoard(address=7, port_numbers=(3,))
    backend = lab(board)
    with serve(UsbRelayPower(timeout=0.5).use_backend(backend)) as power:
        power.on()
        board.hang = True
        with pytest.raises(DriverTimeout) as caught:
            power.state()
        assert str(caught.value) == "USBRelay board 1-3 [16c0:05df] did not answer GET_REPORT (feature) within 0.5 s"
        board.hang = False
        board.gone = True
        with pytest.raises(DriverConnectionError, match="went away during SET_REPORT switching relay 1 off"):
            power.off()
        assert backend.open_handles == []
        board.gone = False
        board.kernel_drivers = {0}  # plugged in again: usbhid took it
        power.off()
    assert board.mask == 0
    assert board.kernel_drivers == {0}
    assert set(board.timeouts) == {500}


def test_the_board_cannot_measure() -> None:
    with (
        serve(UsbRelayPower().use_backend(lab(FakeRelayBoard(address=7)))) as power,
        pytest.raises(MeasurementNotSupported) as caught,
    ):
        next(power.read())
    assert str(caught.value) == (
        "the power driver cannot measure voltage or current: "
        "a USB relay board switches the power but does not measure it"
    )


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"relay": 0}, "relay must be the number of a relay of the board, from 1 to 8, not 0"),
        ({"relay": 9}, "relay must be the number of a relay of the board, from 1 to 8, not 9"),
        ({"usb_id": "16c0"}, "usb_id must be vendor:product in hexadecimal"),
        ({"usb_id": None, "serial": "QAAMZ"}, "UsbRelayPower needs usb_id: leave it out for the usual boards'"),
    ],
)
def test_bad_settings_are_refused_when_the_driver_is_created(config: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        UsbRelayPower(**config)


def test_cli() -> None:
    board = FakeRelayBoard(address=7, port_numbers=(3,), relays=4)
    with serve(UsbRelayPower(relay=4).use_backend(lab(board))) as power:
        cli = power.cli()
        runner = CliRunner()
        assert runner.invoke(cli, ["on"]).output == "power on\n"
        assert board.mask == 0b1000
        assert runner.invoke(cli, ["state"]).output == "on\n"
        assert runner.invoke(cli, ["off"]).output == "power off\n"
        assert runner.invoke(cli, ["state"]).output == "off\n"
        board.transfers.clear()
        assert runner.invoke(cli, ["cycle", "-w", "0"]).exit_code == 0
        assert board.transfers == [set_report(0xFD, 4), set_report(0xFF, 4)]
        result = runner.invoke(cli, ["read"])
        assert result.exit_code == 1
        assert result.output.startswith("Error: the power driver cannot measure voltage or current: ")
