"""DTR, RTS, break and baud rate, observed on the device side, on the port the console uses."""

from __future__ import annotations

import termios
import time

import pytest
from jumpstarter_driver_serial.driver import PySerial

from jumpstarter.client import DriverConnectionError, DriverInvalidArgument, DriverMethodNotImplemented
from jumpstarter.testing import serve
from testsupport.board import SYSRQ_HELP, Board
from testsupport.pty import PseudoTerminal


def test_dtr_resets_the_board_and_rts_picks_its_boot_mode(rfc2217_board: Board) -> None:
    """The board's DTR is its reset line (released: held in reset), its RTS a boot-mode strap."""
    board = rfc2217_board
    with serve(PySerial(url=board.line.url)) as client, client.open(timeout=10) as console:
        board.power_on()
        console.expect("Boot mode: normal")
        boots = board.boots
        client.set_rts(False)  # while the console is open: the same port, not a second connection
        client.set_dtr(False)
        board.wait_for_state("reset")
        client.set_dtr(True)
        console.expect("U-Boot SPL")
        console.expect("Boot mode: recovery \\(RTS released\\)")
        assert board.boots == boots + 1
        assert board.line.connections == 1
    events = board.events
    assert ("rts", False) in events and ("dtr", False) in events
    assert events.index(("rts", False)) < events.index(("dtr", False)) < len(events) - 1
    assert events[events.index(("dtr", False)) + 1] == ("dtr", True)


def test_a_break_then_a_key_is_a_sysrq(rfc2217_board: Board) -> None:
    board = rfc2217_board
    board.autoboot = 0.2
    board.env["bootdelay"] = "0.2"
    with serve(PySerial(url=board.line.url)) as client, client.open(timeout=10) as console:
        board.power_on()
        console.expect_exact("simboard login: ")
        started = time.monotonic()
        console.send_break(0.3)
        held = time.monotonic() - started
        console.send("h")
        console.expect_exact(SYSRQ_HELP)
        client.send_break(0.1)
        console.send("b")
        console.expect("sysrq: Resetting")
        console.expect("U-Boot SPL")
    assert held >= 0.3
    breaks = [value for name, value in board.events if name == "break"]
    assert breaks == [True, False, True, False]


def test_the_baud_rate_reaches_the_device(rfc2217_board: Board) -> None:
    board = rfc2217_board
    with serve(PySerial(url=board.line.url, baudrate=9600)) as client:
        client.set_dtr(True)  # opens the port without a console
        board.wait_for_event(("baudrate", 9600))
        assert client.status()["baudrate"] == 9600
        client.set_baudrate(1500000)
        board.wait_for_event(("baudrate", 1500000))
        assert client.status()["baudrate"] == 1500000
        with pytest.raises(DriverInvalidArgument, match="positive number"):
            client.set_baudrate(0)


def test_breaks_are_checked(rfc2217_board: Board) -> None:
    with serve(PySerial(url=rfc2217_board.line.url)) as client:
        with pytest.raises(DriverInvalidArgument, match="at most 10 s, not 11 s"):
            client.send_break(11)
        with pytest.raises(DriverInvalidArgument, match="more than 0"):
            client.send_break(0)
    assert not [event for event in rfc2217_board.events if event[0] == "break"]


def test_a_pty_has_no_modem_lines(pty_line: PseudoTerminal) -> None:
    with serve(PySerial(url=pty_line.url)) as client:
        no_lines = f"cannot set DTR on {pty_line.url}: the port has no modem control lines"
        with pytest.raises(DriverMethodNotImplemented, match=no_lines):
            client.set_dtr(False)
        with pytest.raises(DriverMethodNotImplemented, match="cannot set RTS"):
            client.set_rts(True)
        client.send_break(0.01)  # a pty takes a break and ignores it


def test_baud_rate_changes_show_on_a_pty(pty_line: PseudoTerminal) -> None:
    with serve(PySerial(url=pty_line.url, baudrate=57600)) as client, client.stream():
        assert pty_line.termios()[5] == termios.B57600
        client.set_baudrate(921600)
        assert pty_line.termios()[5] == termios.B921600
        assert client.status()["baudrate"] == 921600


def test_disable_hupcl_clears_hupcl_for_good(pty_line: PseudoTerminal) -> None:
    """With HUPCL, closing the port drops DTR, which resets many boards; disable_hupcl clears it, and it stays so."""
    with serve(PySerial(url=pty_line.url)) as client, client.stream():
        assert pty_line.termios()[2] & termios.HUPCL  # the default keeps what the port had
    with serve(PySerial(url=pty_line.url, disable_hupcl=True)) as client, client.stream():
        assert not pty_line.termios()[2] & termios.HUPCL
        client.set_baudrate(9600)  # pyserial reconfigures the port: HUPCL stays off
        assert pty_line.termios()[5] == termios.B9600
        assert not pty_line.termios()[2] & termios.HUPCL


def test_control_of_a_device_that_went_away_says_so(pty_line: PseudoTerminal) -> None:
    with serve(PySerial(url=pty_line.url)) as client:
        client.set_baudrate(9600)
        pty_line.unplug()
        with pytest.raises(DriverConnectionError, match=f"no serial device at {pty_line.url}|lost the serial port"):
            client.set_baudrate(19200)
