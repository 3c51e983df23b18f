"""`j serial console` and `j serial pipe`: the serial port on a terminal, or between files.

Both use the client's blocking byte stream with two threads: the calling one (the main
thread, where signals arrive) for the input and for waiting, and one that copies what the
port sends to the output. The calling thread only ever waits in select(), on its input and
on wake-up pipes: one written when the output ends, one written by the signal handlers
(SIGTERM, SIGHUP, SIGINT), which never raise. So every thread ends when the session does,
and a signal cannot interrupt the command half-way through restoring the terminal or
starting a thread.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import IO, TYPE_CHECKING, Any

import click
from anyio import BrokenResourceError, ClosedResourceError

from jumpstarter.client import DriverError

if TYPE_CHECKING:
    from jumpstarter.client import BlockingStream
    from jumpstarter_driver_serial.client import PySerialClient

# Control characters that are not Ctrl-<letter>, as written after ^.
_ESCAPE_KEYS = {"[": 0x1B, "\\": 0x1C, "]": 0x1D, "^": 0x1E, "_": 0x1F}
# What --until searches: the latest output, up to this many bytes.
UNTIL_WINDOW = 1 << 16
STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class _WakeUp:
    """A pipe to wake a select() up from another thread, or from a signal handler."""

    def __init__(self) -> None:
        self.fd, self._write_end = os.pipe()
        os.set_blocking(self._write_end, False)

    def set(self) -> None:
        with contextlib.suppress(OSError):  # full (already woken), or closed (too late)
            os.write(self._write_end, b"!")

    def close(self) -> None:
        os.close(self.fd)
        os.close(self._write_end)


class Signals:
    """While entered (in the main thread), SIGTERM, SIGHUP and SIGINT are recorded and wake `fd` up."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._wake = _WakeUp()
        self.fd = self._wake.fd
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Signals:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handler)
        return self

    def _handler(self, signum: int, frame: Any) -> None:
        self.received = self.received or signal.Signals(signum).name
        self._wake.set()

    def __exit__(self, *exc_info: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._wake.close()


def parse_escape(text: str) -> int:
    """The byte of an escape key written ``^]``, ``^B``, ``ctrl-]`` or ``C-]``."""
    key = text.strip()
    for prefix in ("^", "ctrl-", "ctrl+", "c-"):
        if key.lower().startswith(prefix) and len(key) == len(prefix) + 1:
            char = key[-1]
            if char.isascii() and char.isalpha():
                return ord(char.upper()) - 0x40
            if char in _ESCAPE_KEYS:
                return _ESCAPE_KEYS[char]
    raise click.BadParameter(f"{text!r} is no control key: write ^ and a letter, or one of ^[ ^\\ ^] ^^ ^_")


def escape_name(code: int) -> str:
    """How to press a control key: "Ctrl-]"."""
    return f"Ctrl-{chr(code + 0x40)}"


def _binary(stream: Any) -> IO[bytes]:
    """The binary side of a standard stream (click's CliRunner replaces them with its own, which have one too)."""
    binary: IO[bytes] = getattr(stream, "buffer", stream)
    return binary


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _broken(error: BaseException) -> str:
    """Why a stream broke, without the client's generic prefix."""
    return str(error).removeprefix("the stream broke: ") or "the connection broke"


@contextmanager
def client_stream(client: PySerialClient) -> Iterator[BlockingStream]:
    """The client's byte stream; failing to open it (port busy, missing...) is a click error."""
    with ExitStack() as stack:
        try:
            stream = stack.enter_context(client.stream())
        except DriverError as error:
            raise click.ClickException(str(error)) from None
        yield stream


class _Output:
    """The thread that copies what the port sends to `write`, and says why it stopped."""

    def __init__(self, stream: BlockingStream, write: Any, name: str) -> None:
        self.stream = stream
        self._write = write
        self.ended: str | None = None  # why the connection ended, if it did
        self.finished = _WakeUp()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for chunk in self.stream:
                if self._write(chunk) is False:
                    return
            self.ended = "the exporter ended the connection"
        except BrokenResourceError as error:
            self.ended = _broken(error)
        except (ClosedResourceError, BrokenPipeError):
            pass  # we are leaving; or whoever read our output stopped reading, so do we
        except OSError as error:
            self.ended = f"cannot write the output: {error}"
        finally:
            self.finished.set()

    def join(self) -> None:
        """Once the stream is closed (which ends the thread)."""
        self._thread.join()
        self.finished.close()


# -- console -----------------------------------------------------------------------------------


class _Console:
    """One console session: the terminal in raw mode, the port's output on it, the keys to the port."""

    def __init__(self, stdin: int, stdout: int, escape: int, signals: Signals) -> None:
        self.stdin = stdin
        self.stdout = stdout
        self.escape = bytes([escape])
        self.signals = signals
        self.left = False  # the user pressed the escape key
        self.ended: str | None = None
        self._lock = threading.Lock()
        self._muted = False

    def run(self, stream: BlockingStream, banner: str) -> _Output:
        """Until the user leaves, the connection ends or a signal comes; the terminal is restored on every path.

        Returns the output thread, to join once the stream is closed.
        """
        import termios
        import tty

        saved = termios.tcgetattr(self.stdin)
        output = None
        try:
            tty.setraw(self.stdin, termios.TCSANOW)
            _write_all(self.stdout, banner.encode())
            output = _Output(stream, self._show, "serial-console-output")
            self._copy_input(stream, output)
        finally:
            with self._lock:
                self._muted = True  # nothing more reaches the terminal once it is restored
            with contextlib.suppress(OSError):  # a terminal that went away has nothing to restore
                _write_all(self.stdout, b"\x1b[0m")  # plain colours again, if the device changed them
                termios.tcsetattr(self.stdin, termios.TCSADRAIN, saved)
        return output

    def _show(self, chunk: bytes) -> bool:
        with self._lock:
            if self._muted:
                return False
            _write_all(self.stdout, chunk)
            return True

    def _copy_input(self, stream: BlockingStream, output: _Output) -> None:
        watched = [self.stdin, output.finished.fd, self.signals.fd]
        while self.signals.received is None:
            ready, _, _ = select.select(watched, [], [])
            if output.finished.fd in ready or self.signals.fd in ready:
                return
            data = os.read(self.stdin, 4096)
            if not data:
                self.ended = "the terminal closed"
                return
            index = data.find(self.escape)
            if index >= 0:
                data = data[:index]
                self.left = True
            try:
                if data:
                    stream.send(data)
            except (BrokenResourceError, ClosedResourceError):
                return  # the output thread says why
            if self.left:
                return


def run_console(client: PySerialClient, escape: int) -> int:
    """`j serial console`: returns the exit status (0 when the user left with the escape key)."""
    try:
        stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
        terminal = os.isatty(stdin)
    except (AttributeError, OSError, ValueError):
        terminal = False
    if not terminal:
        raise click.UsageError(
            "the console needs a terminal on standard input; to pipe data in or out, use `j serial pipe`"
        )
    name = client.name or "the serial port"
    try:
        status = client.status()
        where = f" ({status['url']}, {status['baudrate']} {status['framing']})"
    except DriverError:
        where = ""
    banner = f"[Connected to {name}{where}. Press {escape_name(escape)} to leave.]\r\n"
    output = None
    with Signals() as signals:
        console = _Console(stdin, stdout, escape, signals)
        try:
            with client_stream(client) as stream:
                if signals.received is None:
                    output = console.run(stream, banner)
                # Leaving the stream delivers what was typed, then closes it: the output thread ends.
        finally:
            if output is not None:
                output.join()
    ended = console.ended or (output.ended if output is not None else None)
    if console.left:
        click.echo(f"\n[Left the console of {name}.]", err=True)
        return 0
    if signals.received is not None:
        click.echo(f"\n[The console of {name} stopped: {signals.received}.]", err=True)
        return 1
    click.echo(f"\n[The console of {name} ended: {ended or 'the connection ended'}.]", err=True)
    return 1


# -- pipe --------------------------------------------------------------------------------------


class _Pipe:
    """One pipe session: the port to a file (or nowhere), a file to the port."""

    def __init__(self, output: IO[bytes] | None, until: re.Pattern[bytes] | None) -> None:
        self.output = output
        self.until = until
        self.matched = False
        self.input_done = _WakeUp()
        self._stop_input = _WakeUp()
        self._window = b""
        self._input: threading.Thread | None = None

    def write(self, chunk: bytes) -> bool:
        """From the output thread: write, flush, look for --until; False to stop."""
        if self.output is not None:
            self.output.write(chunk)
            self.output.flush()
        if self.until is not None:
            self._window = (self._window + chunk)[-UNTIL_WINDOW:]
            if self.until.search(self._window):
                self.matched = True
                return False
        return True

    def start_input(self, stream: BlockingStream, source: IO[bytes]) -> None:
        self._input = threading.Thread(
            target=self._copy_input, args=(stream, source), name="serial-pipe-input", daemon=True
        )
        self._input.start()

    def _copy_input(self, stream: BlockingStream, source: IO[bytes]) -> None:
        try:
            for data in self._read(source):
                stream.send(data)
        except (BrokenResourceError, ClosedResourceError):
            pass  # the output thread says why
        finally:
            self.input_done.set()

    def _read(self, source: IO[bytes]) -> Iterator[bytes]:
        try:
            fd = source.fileno()
        except (AttributeError, OSError, ValueError):
            fd = None  # an in-memory file: reads do not block
        if fd is None:
            read = getattr(source, "read1", source.read)
            while data := read(1 << 16):
                yield data
            return
        while True:
            ready, _, _ = select.select([fd, self._stop_input.fd], [], [])
            if self._stop_input.fd in ready:
                return
            data = os.read(fd, 1 << 16)
            if not data:
                return
            yield data

    def stop_input(self) -> None:
        """Before leaving the stream: the input thread stops reading."""
        self._stop_input.set()

    def join(self) -> None:
        """Once the stream is closed."""
        if self._input is not None:
            self._input.join()
        self.input_done.close()
        self._stop_input.close()


def run_pipe(
    client: PySerialClient,
    *,
    output: str | None,
    append: bool,
    send_input: bool,
    receive_output: bool,
    until: str | None,
    timeout: float | None,
) -> None:
    """`j serial pipe`; raises click exceptions for what went wrong."""
    stdin = _binary(sys.stdin)
    source = stdin if send_input and not stdin.isatty() else None
    if not receive_output:
        if source is None:
            raise click.UsageError(
                "--no-output sends standard input, but it is a terminal or --no-input is set: nothing to do "
                "(pipe the commands in: echo reboot | j serial pipe --no-output)"
            )
        if output or until:
            raise click.UsageError("--no-output cannot be used with --output or --until")
    try:
        pattern = re.compile(until.encode()) if until else None
    except re.error as error:
        raise click.BadParameter(f"{until!r} is not a regular expression: {error}", param_hint="--until") from None

    with ExitStack() as stack:
        signals = stack.enter_context(Signals())
        if output:
            try:
                sink: IO[bytes] | None = stack.enter_context(open(output, "ab" if append else "wb"))
            except OSError as error:
                raise click.ClickException(f"cannot write {output}: {error.strerror or error}") from None
        else:
            sink = _binary(sys.stdout) if receive_output else None
        session = _Pipe(sink, pattern)
        stack.callback(session.join)  # once the stream is closed: the threads end with it
        copier: _Output | None = None
        try:
            with client_stream(client) as stream:
                copier = _Output(stream, session.write, "serial-pipe-output")
                watched = [copier.finished.fd, signals.fd]
                if source is not None:
                    session.start_input(stream, source)
                    if not receive_output:
                        watched.append(session.input_done.fd)  # fire and forget: done once the input is sent
                if signals.received is None:
                    select.select(watched, [], [], timeout)
                session.stop_input()
                # Leaving the stream delivers what was sent, then closes it: the output thread ends.
        finally:
            if copier is not None:
                copier.join()
    if signals.received is not None:
        return  # asked to stop: what came is written, what was piped in is delivered
    if copier is not None and copier.ended is not None:
        raise click.ClickException(f"the serial connection ended: {copier.ended}")
    if pattern is not None and not session.matched:
        within = f"within {timeout:g} s" if timeout else "before the output stopped"
        raise click.ClickException(f"the output did not match --until {until!r} {within}")
