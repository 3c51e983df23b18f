"""`SerialConsole`: a pexpect spawn over a serial driver's byte stream.

It reads and writes the driver's stream directly, on the client's event loop: no local
socket, no extra thread. Everything pexpect offers on a spawn works (`expect`,
`expect_exact`, `send`, `sendline`, `before`, `after`, `match`, `logfile`...), plus a few
helpers for consoles: `run` (a command and its output), `sendcontrol`, `sendintr`,
`send_break`.
"""

from __future__ import annotations

import io
import re
import threading
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

import anyio
from anyio import BrokenResourceError, ClosedResourceError, EndOfStream
from anyio.abc import ByteReceiveStream
from pexpect import EOF, TIMEOUT
from pexpect.spawnbase import SpawnBase

if TYPE_CHECKING:
    from jumpstarter_driver_serial.client import PySerialClient

    class _Coder(Protocol):
        """pexpect's incremental codec of the spawn's encoding, or its pass-through in bytes mode."""

        def encode(self, s: str | bytes, final: bool = False) -> bytes: ...
        def decode(self, b: bytes, final: bool = False) -> str | bytes: ...

    class _SpawnBase(SpawnBase[Any]):
        """What this module uses of pexpect's SpawnBase beyond its type stubs: its helpers for subclasses."""

        _decoder: _Coder
        _encoder: _Coder
        _before: io.StringIO | io.BytesIO

        def _log(self, s: str | bytes, direction: str) -> None: ...
        def _coerce_send_string(self, s: str) -> str | bytes: ...

else:
    _SpawnBase = SpawnBase

# Control characters that are not Ctrl-<letter> (as in pexpect.spawn.sendcontrol).
_CONTROLS = {"@": 0, "`": 0, "[": 27, "{": 27, "\\": 28, "|": 28, "]": 29, "}": 29, "^": 30, "~": 30, "_": 31, "?": 127}


async def _receive(stream: ByteReceiveStream, seconds: float | None) -> bytes | None:
    """The next chunk of the stream, or None after `seconds` (the read stays pending for the next call)."""
    with anyio.move_on_after(seconds):
        return await stream.receive()
    return None


class SerialConsole(_SpawnBase):
    """A serial console as a pexpect spawn: `expect` what the device prints, `send` what to type.

    Made by `PySerialClient.open()`. Bytes mode by default (`before` and `after` are bytes;
    str patterns and str sends are accepted too); pass ``encoding="utf-8"`` for text.
    `close()` (or leaving a ``with`` block) delivers what was sent, then frees the port for
    other clients. When the connection ends (the device went away, the exporter stopped),
    `expect` raises `pexpect.EOF` with the reason, unless EOF is one of its patterns.
    """

    def __init__(
        self,
        client: PySerialClient,
        *,
        timeout: float | None = 30,
        maxread: int = 65536,
        searchwindowsize: int | None = None,
        logfile: Any = None,
        encoding: str | None = None,
        codec_errors: str = "strict",
        linesep: str = "\n",
        prompt: str | None = None,
    ) -> None:
        super().__init__(
            timeout=timeout,
            maxread=maxread,
            searchwindowsize=searchwindowsize,
            logfile=logfile,
            encoding=encoding,
            codec_errors=codec_errors,
        )
        self.client = client
        self.name = f"<serial console {client.name or 'root'}>"
        self.linesep = linesep if encoding is not None else linesep.encode()
        self.prompt = prompt
        """The prompt `run` waits for when it is given none."""
        self.delaybeforesend = None  # pexpect waits 50 ms before each send for local ptys; a stream needs no such delay
        self._portal = client.portal
        self._lock = threading.Lock()
        self._pending = b""
        self._ended: str | None = None
        self._exits = ExitStack()
        self._stream = self._exits.enter_context(
            self._portal.wrap_async_context_manager(client.stream_async("connect"))
        )
        self.closed = False
        self.terminated = False

    # -- reading -------------------------------------------------------------------------------

    def read_nonblocking(self, size: int = 1, timeout: float | None = -1) -> Any:
        """Up to `size` bytes (a str in text mode): what has arrived, waiting at most `timeout` seconds for some.

        Raises pexpect.TIMEOUT when nothing came in time, pexpect.EOF once the connection ended.
        """
        if self.closed:
            raise ValueError("I/O operation on a closed serial console")
        if timeout == -1:
            timeout = self.timeout
        if not self._pending:
            if self._ended is not None:
                self.flag_eof = True
                raise EOF(self._ended)
            try:
                data = self._portal.call(_receive, self._stream, timeout)
            except EndOfStream:
                self._end("the exporter ended the connection")
            except (BrokenResourceError, ClosedResourceError) as error:
                self._end(str(error) or "the connection broke")
            if data is None:
                raise TIMEOUT("timed out waiting for the serial console")
            self._pending = data
        chunk, self._pending = self._pending[:size], self._pending[size:]
        text = self._decoder.decode(chunk, final=False)
        self._log(text, "read")
        return text

    def _end(self, reason: str) -> NoReturn:
        self._ended = f"the serial console ended: {reason}"
        self.flag_eof = True
        raise EOF(self._ended)

    # -- writing -------------------------------------------------------------------------------

    def send(self, s: str | bytes) -> int:
        """Send text (encoded in text mode) or bytes (as they are) to the device; returns the number of bytes."""
        if self.closed:
            raise ValueError("I/O operation on a closed serial console")
        if isinstance(s, bytes | bytearray):
            data = bytes(s)  # bytes go as they are, in text mode too
            self._log(data if self.encoding is None else data.decode(self.encoding, "replace"), "send")
        else:
            s = self._coerce_send_string(s)
            self._log(s, "send")
            data = self._encoder.encode(s, final=False)
        try:
            self._portal.call(self._stream.send, data)
        except (BrokenResourceError, ClosedResourceError) as error:
            raise ConnectionError(f"the serial console ended: {error or 'the connection broke'}") from None
        return len(data)

    def sendline(self, s: str | bytes = "") -> int:
        """Send `s` and the line separator (``linesep`` of `open()`, "\\n" by default)."""
        return self.send(s) + self.send(self.linesep)

    def write(self, s: str | bytes) -> None:
        self.send(s)

    def writelines(self, sequence: Any) -> None:
        for s in sequence:
            self.send(s)

    def sendcontrol(self, char: str) -> int:
        """Send a control character: ``sendcontrol("c")`` sends Ctrl-C."""
        char = char.lower()
        code = ord(char) - ord("a") + 1 if "a" <= char <= "z" else _CONTROLS.get(char)
        if code is None:
            raise ValueError(f"there is no control character for {char!r}")
        return self.send(bytes([code]))

    def sendintr(self) -> None:
        """Send Ctrl-C, which interrupts the foreground program of a Linux console."""
        self.sendcontrol("c")

    def sendeof(self) -> None:
        """Send Ctrl-D, the end of input for a Linux console (a serial line itself cannot be half-closed)."""
        self.sendcontrol("d")

    def send_break(self, duration: float = 0.25) -> None:
        """Send a break on the line (through the driver, on the same port)."""
        self.client.send_break(duration)

    # -- helpers -------------------------------------------------------------------------------

    def run(self, command: str, *, prompt: str | None = None, timeout: float | None = -1) -> Any:
        """Type `command` and Enter, wait for the prompt, and return the command's output (a str in text mode).

        The output is what came between the echo of the command and the prompt, with line
        ends made "\\n" and the outer blank lines removed. `prompt` (default: the console's
        `prompt`) is matched exactly.
        """
        prompt = prompt or self.prompt
        if not prompt:
            raise ValueError("run() needs the prompt to wait for: pass prompt=, or open(prompt=...)")
        self.sendline(command)
        self.expect_exact(prompt, timeout=timeout)
        output = self.before
        assert output is not None  # set by the match of expect_exact()
        text = output if isinstance(output, str) else output.decode(self.encoding or "utf-8", "replace")
        text = re.sub(r"\r+\n|\r", "\n", text)
        lines = text.split("\n")
        if lines and lines[0].strip() == command.strip():
            lines = lines[1:]  # the device's echo of the command
        result = "\n".join(lines).strip("\n")
        return result if isinstance(output, str) else result.encode(self.encoding or "utf-8")

    def isalive(self) -> bool:
        """True until the console is closed or its connection ended."""
        return not self.closed and self._ended is None

    def close(self, force: bool = True) -> None:
        """Deliver what was sent, then close the connection (once; later calls do nothing)."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            self.terminated = True
        self._exits.close()

    def __str__(self) -> str:
        # pexpect puts this in the messages of TIMEOUT and EOF: show what came since the last match.
        unmatched = self._before.getvalue()
        shown = unmatched[-300:]
        more = f" (the last 300 of {len(unmatched)})" if len(unmatched) > 300 else ""
        return f"{self.name}: received since the last match{more}: {shown!r}"
