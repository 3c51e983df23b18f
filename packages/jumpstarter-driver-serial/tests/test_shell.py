"""End to end: the serial drivers through real `jmp shell --exporter-config FILE -- ...` processes.

The board simulator (testsupport.board) runs in this process, on the device side of a
pseudo-terminal; `jmp shell`, in a process of its own, builds `PySerial` on the other side
from a YAML file and serves it while its command runs `j serial ...`, as a user or a CI job
would. The tests check what each command printed, its exit status, what the board received,
and, for `j serial console`, the user's terminal (another pseudo-terminal, watched from here).

A shell takes about a second to start and each `j` half a second, so the pipe and control
commands share one shell script (`bench`); the console needs a shell of its own per session.
Every process runs in a session of its own, whose whole group is killed when its test ends
(`jumpstarter.testing.Commands`).
"""

from __future__ import annotations

import fcntl
import io
import os
import signal
import struct
import sys
import termios
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pexpect
import pytest
from pexpect.fdpexpect import fdspawn

from jumpstarter.testing import Commands, jmp_shell_command
from testsupport.board import KERNEL_LOG, LOGIN_PROMPT, UBOOT_BANNER, Board
from testsupport.pty import PseudoTerminal

# The slowest a step is allowed to be before a test gives up (a bound for hangs, not a measure).
PATIENCE = 30.0
# Starts `jmp shell` on a terminal as a login does: makes standard input (a pty's slave) the controlling
# terminal of the new session, then becomes `jmp shell`. A program of its own, since Python code run between
# fork and exec in this process (preexec_fn) is unsafe once gRPC or threads run here.
_TAKE_TERMINAL = (
    "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); os.execv(sys.argv[1], sys.argv[1:])"
)


# -- processes and files -----------------------------------------------------------------------


def write_config(directory: Path, serial_entry: str) -> Path:
    """An exporter configuration whose one driver, `serial`, is `serial_entry` (its YAML, indented 4)."""
    path = directory / "exporter.yaml"
    path.write_text(
        "apiVersion: jumpstarter.dev/v1alpha1\n"
        "kind: ExporterConfig\n"
        "metadata:\n"
        "  name: bench\n"
        "export:\n"
        "  serial:\n"
        f"{serial_entry}"
    )
    return path


def pyserial_entry(url: str) -> str:
    return f"    type: PySerial\n    config:\n      url: {url}\n"


# -- pipe and control commands: one shell, one board -------------------------------------------

# Run by `sh -c` under `jmp shell`, in the bench's directory, with /dev/null as standard input (so a
# `j serial pipe` without piped input sends nothing). `step NAME COMMAND...` keeps the command's
# stdout, stderr and exit status in NAME.out, NAME.err and NAME.rc.
BENCH_SCRIPT = r"""
step() {
    name=$1; shift
    "$@" >"$name.out" 2>"$name.err"
    echo $? >"$name.rc"
}
# wait_for FILE REGEX: until FILE has a line that matches (10 s at most, so that a failure cannot hang the script).
wait_for() {
    tries=0
    until grep -q -- "$2" "$1" 2>/dev/null; do
        tries=$((tries + 1)); [ "$tries" -le 200 ] || return 1
        sleep 0.05
    done
}

# The port opens with the first call and stays open for the session: dtr fails (a pty has no
# modem lines) once the port is open. Opening discards what the device sent before; from now
# on what the board prints waits in the port. The test powers the board on when it sees port-open.
step dtr j serial dtr off
touch port-open
step boot j serial pipe -o boot.log --until 'login: ' --timeout 10

# A first pipe, in the background, types root; the board echoes it and asks for the password,
# so once first.log holds the question the first pipe holds the port. A second pipe finds it busy;
# then the first one types the (empty) password and reads the shell's prompt: it kept working.
{ printf 'root\n'; wait_for busy.rc .; printf '\n'; } |
    step first j serial pipe -o first.log --until '# ' --timeout 10 &
wait_for first.log 'Password: '
step busy j serial pipe --timeout 5
wait

echo reset | step reset j serial pipe --no-output
"""
BENCH_STEPS = ("dtr", "boot", "first", "busy", "reset")


@dataclass
class Step:
    """What one command of the bench script printed, and its exit status."""

    stdout: str
    stderr: str
    returncode: int


QUIET_SUCCESS = Step(stdout="", stderr="", returncode=0)


@dataclass
class Bench:
    returncode: int
    stdout: str
    stderr: str  # jmp shell's: the exporter's log
    steps: dict[str, Step]
    directory: Path
    board: Board
    url: str


def read_step(directory: Path, name: str) -> Step:
    return Step(
        stdout=(directory / f"{name}.out").read_text(),
        stderr=(directory / f"{name}.err").read_text(),
        returncode=int((directory / f"{name}.rc").read_text()),
    )


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bench]:
    directory = tmp_path_factory.mktemp("bench")
    # autoboot=0: powered on, the board prints its whole boot log down to the login prompt at once.
    with PseudoTerminal() as line, Board(line, autoboot=0) as board:
        config = write_config(directory, pyserial_entry(line.url))
        with Commands(directory) as commands:
            process = commands.start(*jmp_shell_command(config, "sh", "-c", BENCH_SCRIPT))
            process.wait_for(lambda stdout, stderr: (directory / "port-open").exists(), PATIENCE)
            board.power_on()
            result = process.finish(PATIENCE)
        steps = {name: read_step(directory, name) for name in BENCH_STEPS if (directory / f"{name}.rc").exists()}
        yield Bench(result.returncode, result.stdout, result.stderr, steps, directory, board, line.url)


def test_the_bench_ran_every_step_and_logged_only_the_other_holder(bench: Bench) -> None:
    assert bench.returncode == 0, bench.stderr
    assert bench.stdout == ""  # every step's output went to its file
    assert list(bench.steps) == list(BENCH_STEPS), bench.stderr
    # One log record: this process keeps the pty's slave open (PseudoTerminal does, so that the device side stays
    # up), which the driver rightly reports as another program reading the device.
    this_process = f"pid {os.getpid()} ({Path('/proc/self/comm').read_text().strip()})"
    assert bench.stderr == (
        f"WARNING PySerial: {bench.url} is also open in {this_process}: each program gets part of what the device "
        "sends\n"
    )


def test_dtr_on_a_pty_fails_with_one_line(bench: Bench) -> None:
    assert bench.steps["dtr"] == Step(
        stdout="",
        stderr=f"j: error: cannot set DTR on {bench.url}: the port has no modem control lines "
        "(a pseudo-terminal, or an adapter without them)\n",
        returncode=1,
    )


def test_pipe_captures_the_boot_log_up_to_the_login_prompt(bench: Bench) -> None:
    assert bench.steps["boot"] == QUIET_SUCCESS
    log = (bench.directory / "boot.log").read_bytes()
    # Everything the board printed from power-on, down to its first login prompt, and nothing after.
    assert log.startswith(UBOOT_BANNER.encode())
    assert log.endswith((KERNEL_LOG + LOGIN_PROMPT).encode())
    assert log.count(LOGIN_PROMPT.encode()) == 1
    assert bytes(bench.board.output).startswith(log)


def test_a_second_pipe_finds_the_port_busy_and_the_first_keeps_working(bench: Bench) -> None:
    busy = bench.steps["busy"]
    assert (busy.returncode, busy.stdout) == (1, "")
    assert busy.stderr.startswith(
        f"j: error: port busy: the serial port {bench.url} is held by another client's connection, open since "
    )
    assert busy.stderr.count("\n") == 1 and busy.stderr.endswith("\n")
    # The first pipe typed the password after the second one failed, and read the shell's prompt.
    assert bench.steps["first"] == QUIET_SUCCESS
    assert (bench.directory / "first.log").read_bytes() == b"root\r\nPassword: \r\n# "


def test_a_piped_command_reaches_the_board(bench: Bench) -> None:
    assert bench.steps["reset"] == QUIET_SUCCESS
    # --no-output returns once the command is delivered to the device, which the board then reads.
    bench.board.wait_for_output(b"reset\r\n-sh: reset: not found\r\n# ")
    assert bytes(bench.board.received) == b"root\n\nreset\n"  # all the board ever got in the session


# -- the console: a shell on a terminal of its own ---------------------------------------------


def is_raw(attributes: list[Any]) -> bool:
    return not attributes[3] & (termios.ICANON | termios.ECHO | termios.ISIG)


class Terminal(fdspawn):
    """`jmp shell ... -- j serial console` on a new pseudo-terminal (its controlling terminal), driven by pexpect
    through the master side.

    This process keeps the slave side open too, so that the terminal's settings can be read once the shell has
    exited; everything the shell printed is kept in `transcript`.
    """

    def __init__(self, config: Path, directory: Path) -> None:
        master, self._slave = os.openpty()
        fcntl.ioctl(self._slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
        self.initial = termios.tcgetattr(self._slave)
        self._commands = Commands(directory)
        self.process = self._commands.start(
            sys.executable,
            "-c",
            _TAKE_TERMINAL,
            *jmp_shell_command(config, "j", "serial", "console"),
            stdin=self._slave,
            stdout=self._slave,
            stderr=self._slave,
        ).process
        super().__init__(master, timeout=PATIENCE)
        self.transcript = io.BytesIO()
        self.logfile_read = self.transcript

    def settings(self) -> list[Any]:
        return termios.tcgetattr(self._slave)

    def read_to_end(self) -> str:
        """Once the shell has exited: everything it printed on the terminal."""
        os.close(self._slave)
        self._slave = -1
        self.expect(pexpect.EOF)  # the last slave closed: all that was written has been read
        return self.transcript.getvalue().decode(errors="replace")

    def stop(self) -> None:
        self._commands.close()
        if self._slave >= 0:
            os.close(self._slave)
        if not self.closed:
            self.close()


@dataclass
class ConsoleBench:
    terminal: Terminal
    board: Board
    url: str

    def connect(self) -> None:
        """Wait for the console to be connected (the port is open), then power the board on."""
        self.terminal.expect_exact(f"[Connected to serial ({self.url}, 115200 8N1). Press Ctrl-] to leave.]\r\n")
        assert not is_raw(self.terminal.initial) and is_raw(self.terminal.settings())
        self.board.power_on()
        self.terminal.expect_exact("Hit any key to stop autoboot: 60 ")

    def leaves_cleanly(self, status: int, last_words: str) -> None:
        """The shell exits with `status` after printing `last_words`, the terminal as it was, no traceback."""
        assert self.terminal.process.wait(PATIENCE) == status
        assert self.terminal.settings() == self.terminal.initial
        transcript = self.terminal.read_to_end()
        assert f"\r\n{last_words}\r\n" in transcript
        assert "Traceback" not in transcript


@pytest.fixture
def console(board: Board, pty_line: PseudoTerminal, tmp_path: Path) -> Iterator[ConsoleBench]:
    """`jmp shell -- j serial console` running on a terminal, with the board behind `PySerial`, not yet powered."""
    board.env["bootdelay"] = "60"  # the countdown waits for the test's key, however slow the machine
    terminal = Terminal(write_config(tmp_path, pyserial_entry(pty_line.url)), tmp_path)
    try:
        yield ConsoleBench(terminal, board, pty_line.url)
    finally:
        terminal.stop()


def test_console_keys_reach_the_board_and_the_escape_key_leaves(console: ConsoleBench) -> None:
    terminal, board = console.terminal, console.board
    console.connect()
    terminal.send(" ")
    terminal.expect_exact("\r\n=> ")
    terminal.send("echo typed at the terminal\r")
    terminal.expect_exact("echo typed at the terminal\r\ntyped at the terminal\r\n=> ")
    assert bytes(board.received) == b" echo typed at the terminal\r"
    terminal.send("\x1d")  # Ctrl-]
    console.leaves_cleanly(0, "[Left the console of serial.]")
    assert bytes(board.received) == b" echo typed at the terminal\r"  # the escape key stays here


def test_sigterm_to_the_shell_ends_the_console_cleanly(console: ConsoleBench) -> None:
    console.connect()
    # jmp shell passes the signal on to its command; the console restores the terminal and says why it ended.
    console.terminal.process.send_signal(signal.SIGTERM)
    console.leaves_cleanly(1, "[The console of serial stopped: SIGTERM.]")


# -- no hardware -------------------------------------------------------------------------------


def test_loopback_pipe_gets_back_what_it_sends(tmp_path: Path) -> None:
    config = write_config(tmp_path, "    type: LoopbackSerial\n")
    with Commands(tmp_path) as commands:
        result = commands.shell(config, "sh", "-c", "echo hello | j serial pipe --until hello --timeout 5")
    stdout, stderr = result.stdout, result.stderr
    assert result.returncode == 0, stderr
    # The pipe stops at the match: the newline after hello may come back in time, or not.
    assert stdout in ("hello", "hello\n")
    assert stderr == ""
