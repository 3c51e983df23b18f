"""`j serial pipe` and the control commands, through the real client's `cli()` (click's CliRunner)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from jumpstarter_driver_serial.driver import PySerial

from jumpstarter.testing import serve
from testsupport.board import KERNEL_LOG, LOGIN_PROMPT, UBOOT_BANNER, Board
from testsupport.pty import PseudoTerminal


def later(seconds: float, action) -> threading.Timer:
    timer = threading.Timer(seconds, action)
    timer.start()
    return timer


def invoke(client, *args: str, input: bytes | None = None):
    return CliRunner().invoke(client.cli(), list(args), input=input, catch_exceptions=False)


def test_pipe_captures_a_boot_log_to_a_file(board: Board, pty_line: PseudoTerminal, tmp_path: Path) -> None:
    """The CI recipe: capture from before power-on until the login prompt, into a file."""
    board.env["bootdelay"] = "0.2"
    log = tmp_path / "boot.log"
    with serve(PySerial(url=pty_line.url)) as client:
        timer = later(0.3, board.power_on)  # `j power on`, while the capture runs
        result = invoke(client, "pipe", "--output", str(log), "--until", "login: $", "--timeout", "10")
        timer.join()
        assert result.exit_code == 0, result.output
        assert result.output == ""  # everything went to the file
        text = log.read_bytes()
        assert text.startswith(UBOOT_BANNER.encode())
        assert b"Hit any key to stop autoboot" in text
        assert text.endswith((KERNEL_LOG + LOGIN_PROMPT).encode())

        board.say("more after login")
        result = invoke(client, "pipe", "-o", str(log), "--append", "--until", "login")
        assert result.exit_code == 0, result.output
        assert log.read_bytes() == text + b"more after login"

        result = invoke(client, "pipe", "-o", str(log), "--timeout", "0.2")  # no --append: replaced
        assert result.exit_code == 0
        assert log.read_bytes() == b""


def test_pipe_sends_piped_input_and_prints_the_output(board: Board, pty_line: PseudoTerminal) -> None:
    with serve(PySerial(url=pty_line.url)) as client:
        board.power_on()
        board.wait_for_state("countdown")
        result = invoke(client, "pipe", "--until", "aarch64-linux-gnu-gcc", "--timeout", "10", input=b" version\n")
    assert result.exit_code == 0, result.output
    assert result.stdout_bytes.startswith(b"\r\n=> version\r\nU-Boot 2024.04-sim")
    assert board.received == b" version\n"


def test_pipe_no_output_is_fire_and_forget(board: Board, pty_line: PseudoTerminal) -> None:
    with serve(PySerial(url=pty_line.url)) as client:
        board.power_on()
        board.wait_for_state("countdown")
        board.say(" ")  # (the board's own output does not matter here)
        result = invoke(client, "pipe", "--no-output", input=b"\rreset\n")
        assert result.exit_code == 0, result.output
        assert result.output == ""
        board.wait_for_received(b"\rreset\n")  # delivered before the command returned
        board.wait_for_output(b"resetting ...")


def test_pipe_no_input_leaves_stdin_alone(board: Board, pty_line: PseudoTerminal) -> None:
    with serve(PySerial(url=pty_line.url)) as client:
        result = invoke(client, "pipe", "--no-input", "--timeout", "0.3", input=b"reset\n")
    assert result.exit_code == 0, result.output
    assert board.received == b""


def test_pipe_fails_when_until_does_not_match_in_time(board: Board, pty_line: PseudoTerminal) -> None:
    with serve(PySerial(url=pty_line.url)) as client:
        timer = later(0.1, board.power_on)
        result = invoke(client, "pipe", "--until", "login:", "--timeout", "0.5")
        timer.join()
    assert result.exit_code == 1
    assert "U-Boot SPL" in result.output  # what came is still printed
    assert result.output.endswith("Error: the output did not match --until 'login:' within 0.5 s\n")


def test_pipe_ends_with_the_reason_when_the_device_goes_away(board: Board, pty_line: PseudoTerminal) -> None:
    with serve(PySerial(url=pty_line.url)) as client:
        board.power_on()
        timer = later(0.3, board.unplug)
        result = invoke(client, "pipe", "--timeout", "10")
        timer.join()
    assert result.exit_code == 1
    assert f"Error: the serial connection ended: lost the serial port {pty_line.url}: the device went away" in (
        result.output
    )
    assert "Traceback" not in result.output


def test_pipe_says_who_holds_a_busy_port(board: Board, pty_line: PseudoTerminal) -> None:
    with serve(PySerial(url=pty_line.url)) as client, client.stream():
        result = invoke(client, "pipe", "--timeout", "1")
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: port busy: the serial port {pty_line.url} is held by another client's")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["pipe", "--no-output", "--no-input"], "--no-output sends standard input"),
        (["pipe", "--no-output", "-o", "x.log"], "--no-output cannot be used with --output"),
        (["pipe", "--until", "("], "'(' is not a regular expression"),
        (["pipe", "--timeout", "0"], "0.0 is not in the range x>0"),
        (["console", "--escape", "x"], "'x' is no control key"),
    ],
)
def test_usage_errors(pty_line: PseudoTerminal, args: list[str], message: str) -> None:
    with serve(PySerial(url=pty_line.url)) as client:
        result = invoke(client, *args, input=b"")
    assert result.exit_code == 2
    assert message in result.output


def test_the_console_needs_a_terminal(pty_line: PseudoTerminal) -> None:
    with serve(PySerial(url=pty_line.url)) as client:
        result = invoke(client, "console")
    assert result.exit_code == 2
    assert "the console needs a terminal on standard input; to pipe data in or out, use `j serial pipe`" in (
        result.output
    )


def test_control_commands(rfc2217_board: Board) -> None:
    board = rfc2217_board
    with serve(PySerial(url=board.line.url)) as client:
        for args, event in [
            (["dtr", "off"], ("dtr", False)),
            (["dtr", "on"], ("dtr", True)),
            (["rts", "off"], ("rts", False)),
            (["baudrate", "921600"], ("baudrate", 921600)),
            (["break", "--duration", "0.05"], ("break", True)),
        ]:
            result = invoke(client, *args)
            assert result.exit_code == 0, result.output
            board.wait_for_event(event)
        result = invoke(client, "status")
        assert result.exit_code == 0
        assert f"url: {board.line.url}\nbaudrate: 921600\n" in result.output
        assert "framing: 8N1\n" in result.output and "open: True\n" in result.output
        result = invoke(client, "baudrate", "0")
        assert result.exit_code == 2


def test_control_errors_are_messages_not_tracebacks(pty_line: PseudoTerminal) -> None:
    with serve(PySerial(url=pty_line.url)) as client:
        result = invoke(client, "dtr", "off")
    assert result.exit_code == 1
    assert result.output == f"Error: cannot set DTR on {pty_line.url}: the port has no modem control lines " + (
        "(a pseudo-terminal, or an adapter without them)\n"
    )


def test_help_lists_the_commands(pty_line: PseudoTerminal) -> None:
    with serve(PySerial(url=pty_line.url, description="Console of the DUT")) as client:
        result = invoke(client, "--help")
    assert result.exit_code == 0
    assert "Console of the DUT" in result.output
    for command in ("baudrate", "break", "console", "dtr", "pipe", "rts", "status"):
        assert f"  {command} " in result.output
