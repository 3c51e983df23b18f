"""Run a `j serial ...` command in its own process, against a simulated board: for the tests of the terminal.

    python -m testsupport.serial_harness [--autoboot SECONDS] [--power-on] [--wait] [--report] -- console --escape ^B

The process holds everything `jmp shell ... -- j serial ...` would spread over three: the
board (behind a pseudo-terminal), the exporter (`serve()`) and the command, run through the
client's `cli()` as ``j`` runs it. Around the command it prints, on standard error:

    [harness] ready                      before the command starts
    [harness] exit status N              after it
    [harness] received: b'...'           everything the board received (with --report)

With --power-on the board is switched on once the command has opened the port (opening a
port discards what came before), with --wait the harness reads one line from standard input
before exiting, so that a test can look at the terminal while the process is still there.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from anyio.abc import ByteStream
from jumpstarter_driver_serial.driver import PySerial

from jumpstarter.driver import Composite, exportstream
from jumpstarter.testing import serve
from testsupport.board import Board
from testsupport.pty import PseudoTerminal


@dataclass(kw_only=True)
class BoardConsole(PySerial):
    """PySerial that powers the board on once its first connection has opened the port."""

    board: Board | None = None

    @exportstream
    @asynccontextmanager
    async def connect(self) -> AsyncIterator[ByteStream]:
        async with super().connect() as stream:
            if self.board is not None:
                self.board.power_on()
                self.board = None
            yield stream


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--autoboot", type=float, default=5.0)
    parser.add_argument("--power-on", action="store_true")
    parser.add_argument("--wait", action="store_true")
    parser.add_argument("--report", action="store_true")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    options = parser.parse_args()
    command = options.command[1:] if options.command[:1] == ["--"] else options.command

    with PseudoTerminal() as line, Board(line, autoboot=options.autoboot) as board:
        driver = BoardConsole(url=line.url, board=board if options.power_on else None)
        with serve(Composite(children={"serial": driver})) as client:
            group = client.serial.cli()  # what `j serial` runs
            print("[harness] ready", file=sys.stderr, flush=True)
            try:
                group.main(args=command, prog_name="j serial", standalone_mode=True)
                status = 0
            except SystemExit as exit_:
                status = exit_.code if isinstance(exit_.code, int) else 1
        print(f"[harness] exit status {status}", file=sys.stderr, flush=True)
        if options.report:
            board.wait_until_quiet()  # the pty may still hold what the command sent last
            print(f"[harness] received: {bytes(board.received)!r}", file=sys.stderr, flush=True)
        if options.wait:
            sys.stdin.readline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
