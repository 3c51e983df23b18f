"""`j serial console` on a real terminal, and `j serial pipe` between real pipes: each in a process of its own.

The process (testsupport.serial_harness) runs the board, the exporter and the command; the test
is the user at the terminal (a pseudo-terminal, driven with pexpect) and watches the
terminal's settings from outside (`tcgetattr` on the terminal's master side).

The process is started with subprocess, not pexpect.spawn: pexpect forks and runs Python
in the child before exec, which gRPC (active in this test process) does not survive.
"""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import subprocess
import sys
import termios

import pexpect
import pytest
from pexpect.fdpexpect import fdspawn

from testsupport import with_support

# The board, the exporter and the command in one process (tests/support on its path).
HARNESS = (sys.executable, "-m", "testsupport.serial_harness")


class Terminal(fdspawn):
    """A process on a new pseudo-terminal of 24 x 100 characters, as a pexpect spawn of the terminal's master."""

    def __init__(self, args: list[str]) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
        try:
            self.process = subprocess.Popen(
                args,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                start_new_session=True,
                env=with_support({**os.environ, "PYTHONUNBUFFERED": "1"}),
            )
        finally:
            os.close(slave)
        super().__init__(master, timeout=20)

    def settings(self) -> list:
        """The terminal's settings, as the process left them."""
        return termios.tcgetattr(self.child_fd)

    def kill(self, signum: int) -> None:
        self.process.send_signal(signum)

    def finish(self) -> None:
        """Let the harness exit (it waits for a line), and check that it exited well."""
        self.sendline("")
        self.expect(pexpect.EOF)
        assert self.process.wait(10) == 0

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if not self.closed:
            self.close()


def spawn_console(*args: str, autoboot: float = 5.0) -> Terminal:
    child = Terminal([*HARNESS, "--autoboot", str(autoboot), "--power-on", "--wait", "--", "console", *args])
    child.expect_exact("[harness] ready")
    return child


def terminal(child: Terminal) -> list:
    return child.settings()


def is_raw(attributes: list) -> bool:
    lflag = attributes[3]
    return not lflag & (termios.ICANON | termios.ECHO | termios.ISIG)


def finish(child: Terminal) -> None:
    child.finish()


@pytest.fixture
def console():
    children: list[Terminal] = []

    def start(*args: str, **options) -> Terminal:
        child = spawn_console(*args, **options)
        children.append(child)
        return child

    yield start
    for child in children:
        child.stop()


def test_a_session_from_the_keyboard(console) -> None:
    child = console()
    before = terminal(child)
    assert not is_raw(before)
    child.expect_exact("[Connected to serial (/dev/pts/")
    child.expect_exact(", 115200 8N1). Press Ctrl-] to leave.]\r\n")
    assert is_raw(terminal(child))
    child.expect_exact("Hit any key to stop autoboot")
    child.send(" ")
    child.expect_exact("=> ")
    child.send("echo typed at the keyboard\r")
    child.expect_exact("typed at the keyboard\r\n=> ")
    child.send("\x03")  # Ctrl-C goes to the board, it does not stop the console
    child.expect_exact("<INTERRUPT>\r\n=> ")
    child.send("\x1d")  # Ctrl-]
    child.expect_exact("[Left the console of serial.]")
    child.expect_exact("[harness] exit status 0")
    assert terminal(child) == before  # restored exactly
    output = child.before.decode(errors="replace")
    assert "Traceback" not in output
    finish(child)


def test_another_escape_key(console) -> None:
    child = console("--escape", "^B")
    child.expect_exact("Press Ctrl-B to leave.]")
    child.expect_exact("Hit any key")
    child.send("\x1d")  # Ctrl-] is an ordinary key now: it stops the autoboot
    child.expect_exact("=> ")
    child.send("\x02")
    child.expect_exact("[Left the console of serial.]")
    child.expect_exact("[harness] exit status 0")
    finish(child)


def test_the_device_going_away_ends_the_session_with_a_message(console) -> None:
    child = console()
    before = terminal(child)
    child.expect_exact("Hit any key")
    child.send(" ")
    child.expect_exact("=> ")
    child.send("unplug\r")
    child.expect_exact("[The console of serial ended: lost the serial port /dev/pts/")
    child.expect_exact("the device went away")
    child.expect_exact("[harness] exit status 1")
    assert "Traceback" not in child.before.decode(errors="replace")
    assert terminal(child) == before
    finish(child)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_restores_the_terminal(console, signum: signal.Signals) -> None:
    child = console()
    before = terminal(child)
    child.expect_exact("Hit any key")
    assert is_raw(terminal(child))
    child.kill(signum)
    child.expect_exact(f"[The console of serial stopped: {signum.name}.]")
    child.expect_exact("[harness] exit status 1")
    assert terminal(child) == before
    assert "Traceback" not in child.before.decode(errors="replace")
    finish(child)


def test_the_scrollback_is_left_alone(console) -> None:
    """No alternate screen, no clearing: what the session printed stays on the terminal."""
    child = console()
    child.expect_exact("Hit any key")
    child.send("\x1d")
    child.expect_exact("[harness] exit status 0")
    seen = child.before
    finish(child)
    for sequence in (b"\x1b[?1049", b"\x1b[?47", b"\x1b[2J", b"\x1b[3J", b"\x1bc"):
        assert sequence not in seen


def run_pipe(*args: str, input: bytes = b"", autoboot: float = 5.0) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*HARNESS, "--autoboot", str(autoboot), "--power-on", "--report", "--", "pipe", *args],
        env=with_support(),
        input=input,
        capture_output=True,
        timeout=30,
    )


def test_pipe_between_real_pipes() -> None:
    """Standard input is a pipe (read with select() beside the wake-up pipe), standard output too."""
    result = run_pipe("--until", "13.2.0", "--timeout", "10", input=b" version\n")
    assert result.returncode == 0, result.stderr
    assert b"=> version\r\nU-Boot 2024.04-sim (Apr 01 2024 - 12:00:00 +0000)\r\n\r\naarch64-linux-gnu-gcc" in (
        result.stdout
    )
    assert b"[harness] exit status 0" in result.stderr
    assert b"[harness] received: b' version\\n'" in result.stderr


def test_pipe_no_output_from_a_real_pipe() -> None:
    result = run_pipe("--no-output", input=b" reset\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b""
    assert b"[harness] exit status 0" in result.stderr
    assert b"[harness] received: b' reset\\n'" in result.stderr


def test_pipe_stops_quietly_on_sigterm() -> None:
    process = subprocess.Popen(
        [*HARNESS, "--power-on", "--", "pipe"],
        env=with_support(),
        stdin=subprocess.PIPE,  # left open: the input thread waits on it, and must still end
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stderr.readline() == b"[harness] ready\n"
        first = process.stdout.read(12)  # output flows
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert first == b"\r\nU-Boot SPL"
    assert b"[harness] exit status 0" in stderr
    assert b"Traceback" not in stderr
