"""Scripting the console with `open()`: a pexpect spawn straight over the driver's stream."""

from __future__ import annotations

import io
import time

import pexpect
import pytest
from jumpstarter_driver_serial.console import SerialConsole
from jumpstarter_driver_serial.driver import PySerial

from jumpstarter.client import DriverConnectionError
from jumpstarter.testing import serve
from testsupport.board import LOGIN_PROMPT, SHELL_PROMPT, UBOOT_PROMPT, Board
from testsupport.pty import PseudoTerminal


def test_an_interactive_session_from_u_boot_to_a_linux_shell(board: Board, pty_line: PseudoTerminal) -> None:
    log = io.BytesIO()
    with serve(PySerial(url=pty_line.url)) as client, client.open(timeout=10, logfile=log) as console:
        assert isinstance(console, SerialConsole)
        board.power_on()
        console.expect("Hit any key to stop autoboot")
        console.send(" ")
        console.expect_exact(UBOOT_PROMPT)
        console.prompt = UBOOT_PROMPT
        assert console.run("version").startswith(b"U-Boot 2024.04-sim")
        assert console.run("echo hello board") == b"hello board"
        assert console.run("setenv serverip 10.0.0.1") == b""
        assert console.run("printenv serverip") == b"serverip=10.0.0.1"
        assert console.run("nosuchcommand") == b"Unknown command 'nosuchcommand' - try 'help'"
        console.sendline("reset")
        console.expect("resetting ...")
        console.expect("Hit any key to stop autoboot")
        assert board.boots == 2
    logged = log.getvalue()
    assert b"setenv serverip 10.0.0.1\n" in logged  # what was sent
    assert b"serverip=10.0.0.1\r\n" in logged  # and what was read


def test_a_whole_boot_to_a_shell_in_text_mode(board: Board, pty_line: PseudoTerminal) -> None:
    board.env["bootdelay"] = "0.3"
    with serve(PySerial(url=pty_line.url)) as client:
        board.power_on()
        with client.open(timeout=10, encoding="utf-8", prompt=SHELL_PROMPT) as console:
            index = console.expect(["Kernel panic", LOGIN_PROMPT])
            assert index == 1 and "Starting kernel ..." in console.before
            console.sendline("root")
            console.expect_exact("Password: ")
            console.sendline("secret")
            console.expect_exact(SHELL_PROMPT)
            assert console.run("uname -a") == "Linux simboard 6.6.0-sim #1 SMP PREEMPT aarch64 GNU/Linux"
            assert console.run("cat /proc/cmdline") == "console=ttyS2,115200 root=/dev/mmcblk0p2 rw"
            console.sendintr()
            console.expect_exact("^C")
            console.sendline("reboot")
            console.expect("reboot: Restarting system")
            console.expect("U-Boot SPL")
    assert board.received.count(b"\x03") == 1


def test_a_timeout_says_what_came_instead(board: Board, pty_line: PseudoTerminal) -> None:
    with serve(PySerial(url=pty_line.url)) as client, client.open() as console:
        board.power_on()
        console.expect("Hit any key")
        with pytest.raises(pexpect.TIMEOUT) as caught:
            console.expect("login:", timeout=0.3)
        assert "to stop autoboot" in str(caught.value)
        # What the device printed stays for the next expect.
        assert console.expect(["login:", pexpect.TIMEOUT], timeout=0.1) == 1


def test_the_device_going_away_is_an_eof_with_the_reason(board: Board, pty_line: PseudoTerminal) -> None:
    with serve(PySerial(url=pty_line.url)) as client, client.open(timeout=10) as console:
        board.power_on()
        console.expect("Hit any key")
        console.send(" ")
        console.expect_exact(UBOOT_PROMPT)
        console.sendline("unplug")
        with pytest.raises(pexpect.EOF, match=f"the serial console ended: lost the serial port {pty_line.url}"):
            console.expect("never printed")
        assert not console.isalive()
        assert console.expect([pexpect.EOF]) == 0  # EOF as a pattern matches from now on
        with pytest.raises(ConnectionError, match="the serial console ended"):
            console.sendline("help")


def test_closing_delivers_what_was_sent_and_frees_the_port(board: Board, pty_line: PseudoTerminal) -> None:
    with serve(PySerial(url=pty_line.url)) as client:
        console = client.open()
        with pytest.raises(DriverConnectionError, match="port busy"):
            client.open()
        console.send("x" * 5000 + "\r")  # more than fits in one write of a pty
        console.close()
        console.close()  # twice is fine
        board.wait_for_received(b"x" * 5000 + b"\r", timeout=5)
        with pytest.raises(ValueError, match="closed serial console"):
            console.send("more")
        with client.pexpect() as again:  # the port is free again
            again.send("y")
        board.wait_for_received(b"y")


def test_the_session_closes_a_console_left_open(board: Board, pty_line: PseudoTerminal) -> None:
    with serve(PySerial(url=pty_line.url)) as client:
        console = client.open()
        console.sendline("left open")
    assert console.closed
    assert b"left open\n" in board.received


def test_sendcontrol_and_sendeof_send_control_characters(board: Board, pty_line: PseudoTerminal) -> None:
    with serve(PySerial(url=pty_line.url)) as client, client.open() as console:
        console.sendcontrol("c")
        console.sendcontrol("]")
        console.sendeof()
        with pytest.raises(ValueError, match="no control character"):
            console.sendcontrol("1")
    board.wait_for_received(b"\x03\x1d\x04")


def test_run_needs_a_prompt(board: Board, pty_line: PseudoTerminal) -> None:
    with (
        serve(PySerial(url=pty_line.url)) as client,
        client.open() as console,
        pytest.raises(ValueError, match="needs the prompt"),
    ):
        console.run("version")


def test_expect_is_not_slowed_down_by_the_stream(board: Board, pty_line: PseudoTerminal) -> None:
    """Each answer is read as soon as it arrives: no polling interval, no per-send delay."""
    with serve(PySerial(url=pty_line.url)) as client, client.open(timeout=5, prompt=UBOOT_PROMPT) as console:
        board.power_on()
        console.expect("Hit any key")
        console.send(" ")
        console.expect_exact(UBOOT_PROMPT)
        started = time.monotonic()
        for index in range(20):
            assert console.run(f"echo {index}") == str(index).encode()
        per_command = (time.monotonic() - started) / 20
    assert per_command < 0.05, f"{per_command * 1000:.1f} ms per command"
