"""SerialRelayPower against a real pseudo-terminal: the exact bytes of each command, the port's settings, the errors."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import termios

import pytest
import serial
from click.testing import CliRunner
from jumpstarter_driver_power.common import MeasurementNotSupported, StateNotSupported
from jumpstarter_driver_power.serialrelay import SerialRelayPower, _open_error, lcus_command

from jumpstarter.client import DriverConnectionError, DriverError, DriverTimeout
from jumpstarter.testing import serve
from testsupport.pty import PseudoTerminal


@pytest.mark.parametrize(
    ("channel", "on", "off"),
    [
        (1, "a0 01 01 a2", "a0 01 00 a1"),
        (2, "a0 02 01 a3", "a0 02 00 a2"),
        (8, "a0 08 01 a9", "a0 08 00 a8"),
        (0x60, "a0 60 01 01", "a0 60 00 00"),  # the sum wraps around
    ],
)
def test_lcus_commands(pty: PseudoTerminal, channel: int, on: str, off: str) -> None:
    assert lcus_command(channel, True).hex(" ") == on
    with serve(SerialRelayPower(port=pty.path, channel=channel)) as power:
        power.on()
        assert pty.read_exactly(4).hex(" ") == on
        power.off()
        assert pty.read_exactly(4).hex(" ") == off
        power.cycle(0)
        assert pty.read_exactly(8).hex(" ") == f"{off} {on}"
        assert pty.pending() == b""


def test_the_port_is_set_to_9600_8n1_raw(pty: PseudoTerminal) -> None:
    with serve(SerialRelayPower(port=pty.path)) as power:
        power.on()
        pty.read_exactly(4)
        _iflag, oflag, cflag, lflag, ispeed, ospeed, _cc = pty.termios()
    assert (ispeed, ospeed) == (termios.B9600, termios.B9600)
    assert cflag & termios.CSIZE == termios.CS8
    assert not cflag & (termios.PARENB | termios.CSTOPB)
    assert not oflag & termios.OPOST  # bytes go out as they are: no newline translation
    assert not lflag & termios.ICANON


def test_custom_byte_sequences_and_baud_rate(pty: PseudoTerminal) -> None:
    driver = SerialRelayPower(port=pty.path, baudrate=115200, on_bytes="0x55:0x0A 01", off_bytes="55,0a,00")
    with serve(driver) as power:
        power.on()
        assert pty.read_exactly(3) == b"\x55\x0a\x01"  # 0x0A is not turned into CR LF
        power.off()
        assert pty.read_exactly(3) == b"\x55\x0a\x00"
        assert pty.termios()[5] == termios.B115200
    with serve(SerialRelayPower(port=pty.path, on_bytes="01 02", off_bytes="03")) as power:
        power.on()
        power.off()
        assert pty.read_exactly(3) == b"\x01\x02\x03"


def test_the_relay_neither_measures_nor_reports(pty: PseudoTerminal) -> None:
    with serve(SerialRelayPower(port=pty.path)) as power:
        with pytest.raises(StateNotSupported) as caught:
            power.state()
        assert str(caught.value) == (
            "the power driver cannot tell whether the power is on: "
            "a serial relay module takes commands but does not report its state"
        )
        with pytest.raises(MeasurementNotSupported) as caught:
            list(power.read())
        assert str(caught.value) == (
            "the power driver cannot measure voltage or current: "
            "a serial relay module switches the power but does not measure it"
        )
    assert pty.pending() == b""


def test_a_missing_port_is_a_connection_error() -> None:
    with serve(SerialRelayPower(port="/dev/ttyUSB-not-there")) as power, pytest.raises(DriverConnectionError) as caught:
        power.on()
    assert str(caught.value) == (
        "serial port /dev/ttyUSB-not-there does not exist: check that the relay module is plugged in "
        "and the port's name (ls /dev/serial/by-id/)"
    )


def test_an_unplugged_module_is_reported_and_the_port_reopened(tmp_path: os.PathLike) -> None:
    first = PseudoTerminal(raw=False)
    link = os.path.join(tmp_path, "ttyRELAY")  # as /dev/serial/by-id/... names follow the device
    os.symlink(first.path, link)
    try:
        with serve(SerialRelayPower(port=link)) as power:
            power.on()
            assert first.read_exactly(4) == bytes.fromhex("a00101a2")
            first.close()  # unplugged: the terminal is gone
            with pytest.raises(DriverConnectionError, match="check that the relay module is still plugged in"):
                power.off()
            second = PseudoTerminal(raw=False)  # plugged in again, under a new device name
            os.remove(link)
            os.symlink(second.path, link)
            try:
                power.off()
                assert second.read_exactly(4) == bytes.fromhex("a00100a1")
            finally:
                second.close()
    finally:
        if os.path.lexists(link):
            os.remove(link)


def test_a_port_that_takes_nothing_times_out(pty: PseudoTerminal) -> None:
    # Nobody reads the terminal: once its buffer is full, the write cannot finish.
    with (
        serve(SerialRelayPower(port=pty.path, on_bytes="00" * 200_000, timeout=0.3)) as power,
        pytest.raises(DriverTimeout) as caught,
    ):
        power.on()
    # A long command is cut short in the message.
    assert str(caught.value) == (
        f"writing the on command ({'00 ' * 16}... 200000 bytes) to {pty.path} did not finish within 0.3 s"
    )


@pytest.mark.skipif(os.geteuid() == 0, reason="root opens any port: run as another user to see the real error")
def test_no_permission_on_a_real_port(pty: PseudoTerminal) -> None:
    os.chmod(pty.path, 0)
    with serve(SerialRelayPower(port=pty.path)) as power, pytest.raises(DriverError, match=r"^no permission to open"):
        power.on()


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (errno.EACCES, "NoPermission: no permission to open serial port /dev/ttyUSB0: add the exporter's user"),
        (errno.EBUSY, "ConnectionError: serial port /dev/ttyUSB0 is busy: another program holds it"),
        (errno.ENOENT, "ConnectionError: serial port /dev/ttyUSB0 does not exist"),
        (errno.EIO, "ConnectionError: cannot open serial port /dev/ttyUSB0: [Errno 5] could not open port"),
    ],
)
def test_what_pyserial_raises_on_open_becomes_a_clear_error(code: int, expected: str) -> None:
    # pyserial's own exception, as its posix backend raises it for an OSError of open().
    raised = serial.SerialException(code, f"could not open port /dev/ttyUSB0: [Errno {code}] {os.strerror(code)}")
    error = _open_error("/dev/ttyUSB0", raised)
    assert isinstance(error, ConnectionError)  # every one reaches clients as a DriverConnectionError
    assert f"{type(error).__name__}: {error}".startswith(expected)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"port": ""}, "port must name a serial port, such as /dev/ttyUSB0"),
        ({"port": "/dev/ttyUSB0", "channel": 0}, "channel must be the number of a relay channel, from 1 to 255, not 0"),
        ({"port": "/dev/ttyUSB0", "baudrate": 0}, "baudrate must be the number of bits per second, from 1 to"),
        ({"port": "/dev/ttyUSB0", "on_bytes": b"\xa0"}, "on_bytes must be bytes in hexadecimal"),
        ({"port": "/dev/ttyUSB0", "on_bytes": "A0 0"}, "on_bytes must be bytes in hexadecimal, such as 'A0 01 01 A2'"),
        ({"port": "/dev/ttyUSB0", "off_bytes": ""}, "off_bytes must be bytes in hexadecimal"),
        ({"port": "/dev/ttyUSB0", "timeout": -1}, "timeout must be a number of seconds above 0"),
    ],
)
def test_bad_settings_are_refused_when_the_driver_is_created(config: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        SerialRelayPower(**config)


def test_no_descriptor_is_left_open(pty: PseudoTerminal) -> None:
    before = descriptors_on(pty.path)  # the fixture's own
    with serve(SerialRelayPower(port=pty.path)) as power:
        power.on()
        power.off()
    pty.read_exactly(8)
    assert descriptors_on(pty.path) == before


def descriptors_on(path: str) -> set[int]:
    """This process's descriptors open on `path` (not a count: other threads open and close theirs)."""
    found = set()
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(FileNotFoundError):  # closed since the listing
            if os.readlink(f"/proc/self/fd/{name}") == path:
                found.add(int(name))
    return found


def test_cli(pty: PseudoTerminal) -> None:
    with serve(SerialRelayPower(port=pty.path, channel=2)) as power:
        cli = power.cli()
        runner = CliRunner()
        assert runner.invoke(cli, ["on"]).output == "power on\n"
        assert pty.read_exactly(4) == bytes.fromhex("a00201a3")
        assert runner.invoke(cli, ["off"]).output == "power off\n"
        assert pty.read_exactly(4) == bytes.fromhex("a00200a2")
        result = runner.invoke(cli, ["cycle", "--wait", "0.1"])
        assert (result.exit_code, result.output) == (0, "power cycled (off for 0.1 s)\n")
        assert pty.read_exactly(8) == bytes.fromhex("a00200a2 a00201a3")
        for command in ("state", "read"):
            result = runner.invoke(cli, [command])
            assert result.exit_code == 1
            assert result.output.startswith("Error: the power driver cannot "), result.output
    assert pty.pending() == b""
