"""The `connect` stream over real pseudo-terminals: no loss at full speed, one client at a time, devices that
go away and come back."""

from __future__ import annotations

import contextlib
import os
import re
import select
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import anyio
import pytest
from anyio import BrokenResourceError
from jumpstarter_driver_serial.client import PySerialClient
from jumpstarter_driver_serial.driver import PySerial

from jumpstarter.client import DriverConnectionError
from jumpstarter.testing import serve
from testsupport.board import Board
from testsupport.pty import PseudoTerminal

PATTERN = bytes(range(256))


def read_exactly(stream, size: int, timeout: float = 20) -> bytes:
    """Read `size` bytes from a client stream (chunk boundaries are not kept)."""
    data = bytearray()
    deadline = time.monotonic() + timeout
    while len(data) < size:
        assert time.monotonic() < deadline, f"only {len(data)} of {size} bytes arrived"
        data += stream.receive()
    return bytes(data)


def drain_master(line: PseudoTerminal, size: int, timeout: float = 20) -> bytes:
    """Read `size` bytes on the device side of a pty."""
    data = bytearray()
    deadline = time.monotonic() + timeout
    while len(data) < size:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"the device got only {len(data)} of {size} bytes"
        select.select([line.master], [], [], remaining)
        with contextlib.suppress(BlockingIOError):
            data += os.read(line.master, 1 << 16)
    return bytes(data)


def feed_master(line: PseudoTerminal, data: bytes) -> None:
    """Write `data` on the device side of a pty, as fast as the host reads it."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(line.master, view) :]
        except BlockingIOError:
            select.select([], [line.master], [], 1)


def test_device_to_client_at_full_speed_loses_nothing(pty_line: PseudoTerminal) -> None:
    payload = PATTERN * (8 << 10)  # 2 MiB, much more than the pty and the client buffer
    with serve(PySerial(url=pty_line.url)) as client, client.stream() as stream:
        assert isinstance(client, PySerialClient)
        writer = threading.Thread(target=feed_master, args=(pty_line, payload))
        writer.start()
        # Meanwhile the exporter's event loop keeps answering: the stream never blocks it.
        latencies = []
        with ThreadPoolExecutor(1) as pool:
            calls = pool.submit(lambda: [_timed(client.status, latencies) for _ in range(20)])
            received = read_exactly(stream, len(payload))
            calls.result()
        writer.join()
    assert received == payload
    assert max(latencies) < 0.5, f"calls waited up to {max(latencies):.3f} s during the transfer"


def _timed(function, latencies: list[float]) -> None:
    started = time.monotonic()
    function()
    latencies.append(time.monotonic() - started)


def test_client_to_device_at_full_speed_loses_nothing(pty_line: PseudoTerminal) -> None:
    payload = PATTERN * (8 << 10)
    with serve(PySerial(url=pty_line.url)) as client:
        received: list[bytes] = []
        reader = threading.Thread(target=lambda: received.append(drain_master(pty_line, len(payload))))
        reader.start()
        with client.stream() as stream:
            for offset in range(0, len(payload), 100_000):
                stream.send(payload[offset : offset + 100_000])
        reader.join()
    assert received == [payload]


def test_a_second_client_is_told_who_holds_the_port(pty_line: PseudoTerminal) -> None:
    with serve(PySerial(url=pty_line.url)) as client:
        with client.stream():
            with pytest.raises(DriverConnectionError) as caught, client.stream():
                pass
            message = str(caught.value)
            assert message.startswith(f"port busy: the serial port {pty_line.url} is held by another client's")
            assert "open since" in message and "j serial console" in message
            assert "SerialPortBusy" in " ".join(caught.value.__notes__)
        with client.stream() as stream:  # free again once the first one left
            feed_master(pty_line, b"ok")
            assert read_exactly(stream, 2) == b"ok"


def test_a_port_locked_by_another_program_is_busy_and_names_it(pty_line: PseudoTerminal) -> None:
    import subprocess
    import sys

    locker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_NOCTTY); "
            "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); sys.stdin.read()",
            pty_line.url,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert locker.stdout.readline() == "locked\n"
        with serve(PySerial(url=pty_line.url)) as client:
            with pytest.raises(DriverConnectionError) as caught, client.stream():
                pass
            assert re.fullmatch(
                rf"port busy: the serial port {re.escape(pty_line.url)} is held by pid {locker.pid} \(python[\w.]*\) "
                r"on the exporter's host; close it there",
                str(caught.value),
            ), str(caught.value)
            locker.communicate("")
            with client.stream():  # the lock is gone with the program
                pass
    finally:
        if locker.poll() is None:
            locker.kill()
        locker.wait()


def test_the_port_stays_open_between_connections(pty_line: PseudoTerminal) -> None:
    """What the device sends while no client is connected waits in the port for the next one."""
    with serve(PySerial(url=pty_line.url)) as client:
        with client.stream() as stream:
            stream.send(b"first")
            assert drain_master(pty_line, 5) == b"first"
        feed_master(pty_line, b"while nobody listened")
        with client.stream() as stream:
            assert read_exactly(stream, 21) == b"while nobody listened"


@pytest.mark.anyio
async def test_the_clients_end_of_stream_stops_reading_and_keeps_the_port(pty_line: PseudoTerminal) -> None:
    """A serial line cannot be half-closed: the client's end of stream means it is done listening.

    Reading stops at once (a receive that waits ends), nothing goes to the device, and what
    the device sends next waits in the port for the next connection.
    """
    driver = PySerial(url=pty_line.url)
    try:
        async with driver.connect() as stream:
            await stream.send(b"reboot\n")
            assert drain_master(pty_line, 7) == b"reboot\n"
            feed_master(pty_line, b"Rebooting...")
            assert await stream.receive() == b"Rebooting..."
            ended = []

            async def wait_for_more() -> None:
                with pytest.raises(anyio.EndOfStream):
                    await stream.receive()
                ended.append(True)

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(wait_for_more)
                await anyio.sleep(0.05)
                await stream.send_eof()
            assert ended == [True]
            feed_master(pty_line, b"U-Boot SPL")
            await anyio.sleep(0.05)
            with pytest.raises(anyio.EndOfStream):
                await stream.receive()
        assert drain_master(pty_line, 0) == b""  # nothing was sent to the device
        async with driver.connect() as stream:
            assert await stream.receive() == b"U-Boot SPL"
    finally:
        driver.close()


def test_nothing_is_lost_between_two_connections(pty_line: PseudoTerminal) -> None:
    """Bytes that arrive while one client leaves and the next comes go to the next one."""
    with serve(PySerial(url=pty_line.url)) as client:
        received = bytearray()
        for index in range(20):
            with client.stream() as stream:
                feed_master(pty_line, b"%03d," % index)
                while not received.endswith(b"%03d," % index):
                    received += stream.receive()
            feed_master(pty_line, b"[after %03d]" % index)  # right after this client left: for the next one
        with client.stream() as stream:
            feed_master(pty_line, b"end")
            while not received.endswith(b"end"):
                received += stream.receive()
    expected = b"".join(b"%03d,[after %03d]" % (index, index) for index in range(20)) + b"end"
    assert received.count(b"[after") == 20
    assert bytes(received) == expected


def test_a_device_that_goes_away_ends_the_stream_with_the_reason(board: Board, pty_line: PseudoTerminal) -> None:
    path = pty_line.url
    with serve(PySerial(url=path)) as client:
        with client.stream() as stream:
            board.power_on()
            assert b"U-Boot SPL" in read_exactly(stream, 20)
            board.unplug()
            with pytest.raises(BrokenResourceError) as caught:
                while True:
                    stream.receive()
            assert f"lost the serial port {path}: the device went away" in str(caught.value)
        # The device node is gone too, so the next connection says what is missing.
        with (
            pytest.raises(DriverConnectionError, match=f"no serial device at {path}: is it plugged in"),
            client.stream(),
        ):
            pass


def test_a_device_that_comes_back_is_opened_again(tmp_path) -> None:
    """A USB serial adapter that re-enumerates: its /dev/serial/by-id link points at the new device."""
    link = tmp_path / "usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0"
    with PseudoTerminal() as first, PseudoTerminal() as second:
        link.symlink_to(first.url)
        with serve(PySerial(url=str(link))) as client:
            with client.stream() as stream:
                feed_master(first, b"one")
                assert read_exactly(stream, 3) == b"one"
                first.unplug()
                with pytest.raises(BrokenResourceError, match="the device went away"):
                    while True:
                        stream.receive()
            link.unlink()
            link.symlink_to(second.url)
            with client.stream() as stream:
                feed_master(second, b"two")
                assert read_exactly(stream, 3) == b"two"
                stream.send(b"back")
                assert drain_master(second, 4) == b"back"


def test_a_device_that_appears_later_needs_check_present_false(tmp_path) -> None:
    link = tmp_path / "board-console"
    with pytest.raises(ConnectionError, match="check_present: false"):
        PySerial(url=str(link))
    driver = PySerial(url=str(link), check_present=False)
    with serve(driver) as client:
        with pytest.raises(DriverConnectionError, match=f"no serial device at {link}"), client.stream():
            pass
        with PseudoTerminal() as line:  # the board is powered: its USB serial appears
            link.symlink_to(line.url)
            with client.stream() as stream:
                feed_master(line, b"U-Boot")
                assert read_exactly(stream, 6) == b"U-Boot"


def test_cps_paces_what_the_client_sends(board: Board, pty_line: PseudoTerminal) -> None:
    text = b"setenv bootargs console=ttyS2\r"  # 30 characters
    with serve(PySerial(url=pty_line.url, cps=100)) as client:
        started = time.monotonic()
        with client.stream() as stream:
            stream.send(text)
        board.wait_for_received(text)
        elapsed = board.arrivals[-1][0] - started
    # 30 characters at 100 per second take 0.29 s from the first to the last. A busy machine can only
    # delay what arrives, so the pacing shows as a ceiling: by any moment, no more has arrived than
    # 100 per second allow (one character of slack for the clocks' rounding).
    assert 0.27 <= elapsed < 1.5, elapsed
    received = 0
    for arrived, size in board.arrivals:
        received += size
        assert received <= 2 + (arrived - started) * 100, (received, arrived - started)


def test_without_cps_the_same_text_goes_at_once(board: Board, pty_line: PseudoTerminal) -> None:
    text = b"setenv bootargs console=ttyS2\r"
    with serve(PySerial(url=pty_line.url)) as client:
        started = time.monotonic()
        with client.stream() as stream:
            stream.send(text)
        board.wait_for_received(text)
    assert board.arrivals[-1][0] - started < 0.25
    assert len(board.arrivals) <= 3


def _open_by_this_process(path: str) -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            count += os.readlink(f"/proc/self/fd/{fd}") == path
    return count


def test_the_session_closes_the_port(pty_line: PseudoTerminal) -> None:
    assert _open_by_this_process(pty_line.url) == 1  # the test's own end of the pty
    driver = PySerial(url=pty_line.url)
    with serve(driver) as client:
        with client.stream():
            assert _open_by_this_process(pty_line.url) == 2
        assert _open_by_this_process(pty_line.url) == 2  # kept open between connections
    assert _open_by_this_process(pty_line.url) == 1
