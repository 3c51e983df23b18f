"""Ports that are not local devices: rfc2217:// through a real ser2net, socket:// to a TCP server, loop://."""

from __future__ import annotations

import socket
import termios
import threading
import time

import pexpect
import pytest
import serial
from anyio import BrokenResourceError
from jumpstarter_driver_serial.driver import LoopbackSerial, PySerial

from jumpstarter.client import DriverConnectionError
from jumpstarter.testing import serve
from testsupport.board import KERNEL_LOG, LOGIN_PROMPT, UBOOT_PROMPT, Board
from testsupport.pty import PseudoTerminal

# -- rfc2217:// through ser2net --------------------------------------------------------------------


def test_ser2net_boot_log_and_a_u_boot_session(ser2net: str, board: Board, pty_line: PseudoTerminal) -> None:
    board.env["bootdelay"] = "3"
    with serve(PySerial(url=ser2net)) as client, client.open(timeout=10) as console:
        board.power_on()  # after the port is open: ser2net opens the pty when we connect, and flushes it
        console.expect("U-Boot SPL 2024.04-sim")
        console.expect("Hit any key to stop autoboot")
        console.send(" ")
        console.expect_exact(UBOOT_PROMPT)
        console.prompt = UBOOT_PROMPT
        assert console.run("echo through ser2net") == b"through ser2net"
        # Bytes that telnet escapes (0xff) and NULs pass both ways.
        console.send(b"echo \xff\x00\xfe\r")
        console.expect_exact(b"\r\n" + UBOOT_PROMPT.encode())
        board.wait_for_received(b"echo \xff\x00\xfe\r")
        console.sendline("boot")
        console.expect_exact(LOGIN_PROMPT)
        assert KERNEL_LOG.encode().replace(b"\r\n", b"\n") in console.before.replace(b"\r\n", b"\n")


def test_ser2net_applies_the_baud_rate_to_the_device(ser2net: str, pty_line: PseudoTerminal) -> None:
    with serve(PySerial(url=ser2net, baudrate=57600)) as client, client.stream():
        deadline = time.monotonic() + 5
        while pty_line.termios()[5] != termios.B57600 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert pty_line.termios()[5] == termios.B57600
        client.set_baudrate(19200)
        while pty_line.termios()[5] != termios.B19200 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert pty_line.termios()[5] == termios.B19200


def test_ser2net_kicking_us_out_ends_the_stream_with_the_reason(ser2net: str, board: Board) -> None:
    with serve(PySerial(url=ser2net)) as client, client.stream() as stream:
        board.say("hello")
        received = b""
        while b"hello" not in received:
            received += stream.receive()
        # Someone else connects: ser2net's kickolduser drops us.
        other = serial.serial_for_url(ser2net, timeout=1)
        try:
            with pytest.raises(BrokenResourceError) as caught:
                while True:
                    stream.receive()
        finally:
            other.close()
    message = str(caught.value)
    assert f"lost the serial port {ser2net}: the connection to the server that serves it closed" in message


def test_an_rfc2217_server_that_is_not_there() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"rfc2217://127.0.0.1:{port}"
    with serve(PySerial(url=url)) as client, pytest.raises(DriverConnectionError) as caught, client.stream():
        pass
    assert str(caught.value) == (
        f"cannot open {url}: Connection refused; is the serial server (such as ser2net) running there, with an "
        "RFC 2217 (telnet) port?"
    )


# -- socket:// ---------------------------------------------------------------------------------------


def test_socket_session_and_a_server_that_goes_away(socket_board: Board) -> None:
    board = socket_board
    with serve(PySerial(url=board.line.url)) as client, client.open(timeout=10, prompt=UBOOT_PROMPT) as console:
        board.power_on()
        console.expect("Hit any key")
        console.send(" ")
        console.expect_exact(UBOOT_PROMPT)
        assert console.run("printenv baudrate") == b"baudrate=115200"
        board.unplug()
        with pytest.raises(pexpect.EOF, match=f"lost the serial port {board.line.url}: the connection to the server"):
            console.expect("never")


def test_socket_full_speed_both_ways() -> None:
    """socket:// is read on the event loop like a device: everything arrives, in order."""
    payload = bytes(range(256)) * 4096  # 1 MiB
    with socket.create_server(("127.0.0.1", 0)) as server:
        url = f"socket://127.0.0.1:{server.getsockname()[1]}"
        echoed = []

        def echo() -> None:
            connection, _ = server.accept()
            with connection:
                while data := connection.recv(1 << 16):
                    connection.sendall(data)
                echoed.append(True)

        thread = threading.Thread(target=echo)
        thread.start()
        with serve(PySerial(url=url)) as client, client.stream() as stream:
            sender = threading.Thread(
                target=lambda: [stream.send(payload[i : i + 65536]) for i in range(0, len(payload), 65536)]
            )
            sender.start()
            received = bytearray()
            while len(received) < len(payload):
                received += stream.receive()
            sender.join()
        thread.join(10)
    assert received == payload


# -- loop:// -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "driver", [LoopbackSerial, lambda: PySerial(url="loop://")], ids=["LoopbackSerial", "PySerial(loop://)"]
)
def test_loop_needs_no_hardware(driver) -> None:
    every_byte = bytes(range(256)) * 64
    with serve(driver()) as client:
        with client.stream() as stream:
            stream.send(every_byte)
            received = bytearray()
            while len(received) < len(every_byte):
                received += stream.receive()
            assert received == every_byte
        with client.open(timeout=5, encoding="utf-8") as console:
            console.sendline("ping über loop")
            console.expect_exact("ping über loop\n")
        client.set_dtr(False)
        client.set_rts(False)
        client.send_break(0.01)
        client.set_baudrate(9600)
        assert client.status()["baudrate"] == 9600
        assert client.status()["url"] == "loop://"
