"""`PseudoTerminal`: a real pseudo-terminal standing in for a serial device, in the tests of the workspace."""

from __future__ import annotations

import os
import select
import termios
import threading
import time
import tty
from collections.abc import Callable
from typing import Any


class PseudoTerminal:
    """A pseudo-terminal (`os.openpty`): a driver opens `path` (the slave side, also `url`); the
    test, or a simulated board (`testsupport.board.Board`), works the other side (`master`).

    With ``raw=True`` (the default) the terminal is raw from the start and hangs up on close
    (HUPCL), like a real serial port, so that nothing is echoed back or translated before the
    driver opens it. ``raw=False`` keeps a new pty's settings (cooked), so that a test sees the
    settings the driver makes. The master side never blocks. A pty carries no modem lines and
    no break (`on_control` is never called), but the settings the host made are visible here
    (`termios()`), and `unplug()` makes the device vanish.
    """

    def __init__(self, *, raw: bool = True) -> None:
        self.master, self.slave = os.openpty()
        if raw:
            tty.setraw(self.slave)
            attributes = termios.tcgetattr(self.slave)
            attributes[2] |= termios.HUPCL
            termios.tcsetattr(self.slave, termios.TCSANOW, attributes)
        self.path = self.url = os.ttyname(self.slave)
        os.set_blocking(self.master, False)
        self.on_control: Callable[[str, Any], None] | None = None
        self.closed = False

    def fileno(self) -> int:
        return self.master

    def read(self) -> bytes | None:
        """What the host sent (b"" if nothing yet); None once the line is gone."""
        try:
            return os.read(self.master, 65536)
        except BlockingIOError:
            return b""
        except OSError:
            return None

    def read_exactly(self, count: int, timeout: float = 5.0) -> bytes:
        """Exactly `count` bytes written to the terminal, or fail after `timeout` seconds."""
        data = b""
        deadline = time.monotonic() + timeout
        while len(data) < count:
            ready, _, _ = select.select([self.master], [], [], max(deadline - time.monotonic(), 0))
            if not ready:
                raise AssertionError(f"expected {count} bytes on {self.path}, got {data.hex(' ') or 'nothing'}")
            data += self.read() or b""
        return data

    def pending(self, wait: float = 0.1) -> bytes:
        """What arrives within `wait` seconds: checks that nothing more was written."""
        ready, _, _ = select.select([self.master], [], [], wait)
        return (self.read() or b"") if ready else b""

    def write(self, data: bytes, stop: threading.Event | None = None) -> None:
        """Send `data` to the host, as fast as it reads (until `stop` is set, or the line is gone)."""
        view = memoryview(data)
        while view and not (stop is not None and stop.is_set()) and not self.closed:
            try:
                view = view[os.write(self.master, view) :]
            except BlockingIOError:
                select.select([], [self.master], [], 0.05)
            except OSError:
                return

    def termios(self) -> list[Any]:
        """The terminal settings the host (the driver) made: [iflag, oflag, cflag, lflag, ispeed, ospeed, cc]."""
        return termios.tcgetattr(self.master)

    def unplug(self) -> None:
        """The device goes away: the host's reads fail, and `path` no longer exists."""
        if not self.closed:
            self.closed = True
            os.close(self.master)
            os.close(self.slave)

    close = unplug

    def __enter__(self) -> PseudoTerminal:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
