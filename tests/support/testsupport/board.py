"""A simulated board on the device side of a serial line, for tests (and for trying the driver by hand).

The board prints a boot log, counts down to autoboot, answers at a U-Boot-like prompt
("=> ": help, version, echo, printenv, setenv, reset, boot...), then boots a "Linux" with a
login prompt and a small shell. It reacts to the control lines where the line carries
them: DTR released holds it in reset (asserting it again boots it: the auto-reset of many
boards), RTS picks the boot mode it reports, and a break followed by a key is a Linux
SysRq (h: help, b: reboot).

Lines (the device side of a port):

- `testsupport.pty.PseudoTerminal`: a real pseudo-terminal; the driver opens ``line.url``,
  its slave. A pty carries no modem lines and no break, but the host's termios settings
  (baud rate, HUPCL) are visible there (`line.termios()`), and `unplug()` makes the device
  vanish.
- `TcpLine`: a TCP server on 127.0.0.1; raw bytes (``socket://``), or with ``rfc2217=True``
  an RFC 2217 server (pyserial's `PortManager`) that hands DTR, RTS, break and baud rate
  changes to the board (``rfc2217://``).

    with PseudoTerminal() as line, Board(line, autoboot=1) as board:
        board.power_on()
        ...  # PySerial(url=line.url)
        board.wait_for_output(b"login: ")

Everything runs in one thread per board (and one per TCP line), stopped on exit.
"""

from __future__ import annotations

import contextlib
import os
import queue
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from testsupport.pty import PseudoTerminal

UBOOT_BANNER = (
    "\r\nU-Boot SPL 2024.04-sim (Apr 01 2024 - 12:00:00 +0000)\r\n"
    "DRAM:  2 GiB\r\n"
    "Trying to boot from MMC1\r\n"
    "\r\n\r\nU-Boot 2024.04-sim (Apr 01 2024 - 12:00:00 +0000)\r\n\r\n"
    "Model: Simulated Board rev B\r\n"
    "DRAM:  2 GiB\r\n"
    "Core:  42 devices, 14 uclasses, devicetree: separate\r\n"
    "MMC:   mmc@fe2b0000: 0\r\n"
    "In:    serial\r\nOut:   serial\r\nErr:   serial\r\n"
)
KERNEL_LOG = (
    "Starting kernel ...\r\n\r\n"
    "[    0.000000] Booting Linux on physical CPU 0x0000000000 [0x410fd083]\r\n"
    "[    0.000000] Linux version 6.6.0-sim (builder@ci) (gcc 13.2.0) #1 SMP PREEMPT\r\n"
    "[    0.000000] Machine model: Simulated Board rev B\r\n"
    "[    0.000000] Kernel command line: console=ttyS2,115200 root=/dev/mmcblk0p2 rw\r\n"
    "[    0.812345] Serial: 8250/16550 driver, 4 ports, IRQ sharing disabled\r\n"
    "[    1.234567] Run /sbin/init as init process\r\n"
    "\r\nWelcome to SimOS 1.0\r\n"
)
UBOOT_PROMPT = "=> "
LOGIN_PROMPT = "simboard login: "
SHELL_PROMPT = "# "
HELP = (
    "boot      - boot the kernel\r\n"
    "echo      - echo its arguments\r\n"
    "help      - print this list\r\n"
    "printenv  - print environment variables\r\n"
    "reset     - reset the board\r\n"
    "setenv    - set an environment variable\r\n"
    "unplug    - the USB serial adapter goes away (for tests)\r\n"
    "version   - print the U-Boot version\r\n"
)
SYSRQ_HELP = "sysrq: HELP : loglevel(0-9) reboot(b) crash(c) show-memory-usage(m) sync(s) show-task-states(t)"
# How long after a break a key counts as a SysRq command.
SYSRQ_WINDOW = 5.0


class _Lines:
    """What pyserial's RFC 2217 `PortManager` sets on a serial port, handed to the board."""

    cts = True
    dsr = True
    ri = False
    cd = True

    def __init__(self, notify: Callable[[str, Any], None]) -> None:
        defaults = {"baudrate": 115200, "bytesize": 8, "parity": "N", "stopbits": 1, "xonxoff": False, "rtscts": False}
        for name, value in defaults.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "_notify", notify)

    def __setattr__(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)
        self._notify(name, value)

    def reset_input_buffer(self) -> None:
        self._notify("purge", "input")

    def reset_output_buffer(self) -> None:
        self._notify("purge", "output")


class _Connection:
    """A thread-safe writer for `PortManager`'s answers."""

    def __init__(self, sock: socket.socket) -> None:
        self._socket = sock
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self._lock, contextlib.suppress(OSError):
            self._socket.sendall(data)


class TcpLine:
    """A TCP server on 127.0.0.1 in front of the board: raw bytes, or RFC 2217 with control lines.

    One client at a time; a new one replaces the previous (like ser2net's kickolduser).
    """

    def __init__(self, *, rfc2217: bool = False) -> None:
        self.rfc2217 = rfc2217
        self._listener = socket.create_server(("127.0.0.1", 0))
        host, port = self._listener.getsockname()[:2]
        self.url = f"{'rfc2217' if rfc2217 else 'socket'}://{host}:{port}"
        self._board_end, self._net_end = socket.socketpair()
        self._board_end.setblocking(False)
        self.on_control: Callable[[str, Any], None] | None = None
        self.connections = 0
        self.closed = False
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._client: socket.socket | None = None
        self._thread = threading.Thread(target=self._serve, name=f"board-{self.url}", daemon=True)
        self._thread.start()

    def fileno(self) -> int:
        return self._board_end.fileno()

    def read(self) -> bytes | None:
        try:
            data = self._board_end.recv(65536)
        except BlockingIOError:
            return b""
        except OSError:
            return None
        return data if data else None

    def write(self, data: bytes, stop: threading.Event) -> None:
        view = memoryview(data)
        while view and not stop.is_set():
            try:
                view = view[self._board_end.send(view) :]
            except BlockingIOError:
                select.select([], [self._board_end], [], 0.05)
            except OSError:
                return

    def _control(self, name: str, value: Any) -> None:
        if self.on_control is not None:
            self.on_control(name, value)

    def _serve(self) -> None:
        from serial.rfc2217 import PortManager

        manager = None
        while not self._stop.is_set():
            watched = [self._listener, self._net_end, self._wake_r] + ([self._client] if self._client else [])
            ready, _, _ = select.select(watched, [], [])
            if self._wake_r in ready:
                break
            if self._listener in ready:
                connection, _ = self._listener.accept()
                connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._drop_client()
                self._client = connection
                self.connections += 1
                writer = _Connection(connection)
                manager = PortManager(_Lines(self._control), writer) if self.rfc2217 else None
                continue
            if self._client is not None and self._client in ready:
                try:
                    data = self._client.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    self._drop_client()
                    continue
                if manager is not None:
                    data = b"".join(manager.filter(data))
                if data:
                    self._net_end.sendall(data)
            if self._net_end in ready:
                data = self._net_end.recv(65536)
                if not data:
                    break
                if self._client is not None:
                    if manager is not None:
                        data = data.replace(b"\xff", b"\xff\xff")
                    with contextlib.suppress(OSError):
                        self._client.sendall(data)
        self._drop_client()

    def _drop_client(self) -> None:
        if self._client is not None:
            with contextlib.suppress(OSError):
                self._client.shutdown(socket.SHUT_RDWR)
            self._client.close()
            self._client = None

    def unplug(self) -> None:
        """The server goes away: the client's connection closes, and new ones are refused."""
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._stop.set()
        os.write(self._wake_w, b"!")
        self._thread.join()
        for sock in (self._listener, self._board_end, self._net_end):
            sock.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def __enter__(self) -> TcpLine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class Board:
    """A U-Boot-like board on a line (`PseudoTerminal` or `TcpLine`); it runs in its own thread while entered.

    What it sees and does is recorded for tests: `received` (all bytes from the host, and
    `arrivals`, the time and size of each read), `output` (all it printed), `events`
    (control line changes: ("dtr", False), ("break", True)...).
    """

    def __init__(self, line: PseudoTerminal | TcpLine, *, autoboot: float = 3.0, dtr_reset: bool = True) -> None:
        self.line = line
        self.autoboot = autoboot
        self.dtr_reset = dtr_reset
        self.received = bytearray()
        self.arrivals: list[tuple[float, int]] = []
        self.output = bytearray()
        self.events: list[tuple[str, Any]] = []
        self.env = {"bootdelay": str(autoboot), "baudrate": "115200", "bootcmd": "run distro_bootcmd"}
        self.boots = 0
        self.state = "off"
        self._rts = True
        self._held = False
        self._sysrq_until = 0.0
        self._deadline: float | None = None
        self._line = ""
        self._after_cr = False
        self._login_user = ""
        self._changed = threading.Condition()
        self._actions: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="board", daemon=True)
        line.on_control = self._on_control

    # -- for tests -----------------------------------------------------------------------------

    def __enter__(self) -> Board:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        os.write(self._wake_w, b"!")
        self._thread.join()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def power_on(self) -> None:
        """Boot: the boot log, then the autoboot countdown."""
        self._do(self._boot)

    def unplug(self) -> None:
        """The device goes away (waits until it has)."""
        done = threading.Event()

        def unplug() -> None:
            self.line.unplug()
            done.set()

        self._do(unplug)
        done.wait(5)

    def say(self, text: str | bytes) -> None:
        """Print something on the line, as the board."""
        data = text.encode() if isinstance(text, str) else text
        self._do(lambda: self._write(data))

    def wait_for_output(self, pattern: bytes, timeout: float = 10) -> None:
        self._wait(lambda: pattern in self.output, timeout, f"the board never printed {pattern!r}")

    def wait_for_received(self, pattern: bytes, timeout: float = 10) -> None:
        self._wait(lambda: pattern in self.received, timeout, f"the board never received {pattern!r}")

    def wait_for_event(self, event: tuple[str, Any], timeout: float = 10) -> None:
        self._wait(lambda: event in self.events, timeout, f"the board never saw {event!r} (it saw {self.events})")

    def wait_for_state(self, state: str, timeout: float = 10) -> None:
        self._wait(lambda: self.state == state, timeout, f"the board never got to {state!r} (it is {self.state!r})")

    def wait_until_quiet(self, quiet: float = 0.2, timeout: float = 5) -> None:
        """Until nothing has arrived for `quiet` seconds (what is on its way has been read)."""
        started = time.monotonic()
        deadline = started + timeout
        with self._changed:
            while time.monotonic() < deadline:
                last = max(started, self.arrivals[-1][0] if self.arrivals else started)
                if time.monotonic() - last >= quiet:
                    return
                self._changed.wait(quiet)

    def _wait(self, condition: Callable[[], bool], timeout: float, message: str) -> None:
        with self._changed:
            if not self._changed.wait_for(condition, timeout):
                raise AssertionError(message)

    # -- the board's thread --------------------------------------------------------------------

    def _do(self, action: Callable[[], None]) -> None:
        self._actions.put(action)
        os.write(self._wake_w, b"!")

    def _run(self) -> None:
        reading = True
        while not self._stop.is_set():
            timeout = None if self._deadline is None else max(0.0, self._deadline - time.monotonic())
            watched = [self._wake_r] + ([self.line.fileno()] if reading and not self.line.closed else [])
            ready, _, _ = select.select(watched, [], [], timeout)
            if self._wake_r in ready:
                os.read(self._wake_r, 4096)
                while not self._actions.empty():
                    self._actions.get()()
            if reading and not self.line.closed and self.line.fileno() in ready:
                data = self.line.read()
                if data is None:
                    reading = False  # the line is gone
                elif data:
                    with self._changed:
                        self.received += data
                        self.arrivals.append((time.monotonic(), len(data)))
                        self._changed.notify_all()
                    for byte in data:
                        self._key(chr(byte))
            if self._deadline is not None and time.monotonic() >= self._deadline:
                self._deadline = None
                if self.state == "countdown":
                    self._boot_kernel()

    def _write(self, data: bytes) -> None:
        with self._changed:
            self.output += data
            self._changed.notify_all()
        self.line.write(data, self._stop)

    def _say(self, text: str) -> None:
        self._write(text.encode())

    def _set_state(self, state: str) -> None:
        with self._changed:
            self.state = state
            self._changed.notify_all()

    def _on_control(self, name: str, value: Any) -> None:
        """From the line's thread: recorded at once, acted upon in the board's thread."""
        event = ("break", value) if name == "break_condition" else (name, value)
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()
        self._do(lambda: self._control(*event))

    def _control(self, name: str, value: Any) -> None:
        if name == "rts":
            self._rts = bool(value)
        elif name == "dtr" and self.dtr_reset:
            if not value and self.state != "off":
                self._held = True
                self._deadline = None
                self._set_state("reset")
            elif value and self._held:
                self._held = False
                self._boot()
        elif name == "break" and value and self.state in ("login", "password", "shell"):
            self._sysrq_until = time.monotonic() + SYSRQ_WINDOW

    def _boot(self) -> None:
        self.boots += 1
        self._line = ""
        self._say(UBOOT_BANNER)
        self._say(f"Boot mode: {'normal' if self._rts else 'recovery (RTS released)'}\r\n")
        delay = float(self.env.get("bootdelay", self.autoboot))
        self._say(f"Hit any key to stop autoboot: {delay:2.0f} ")
        self._set_state("countdown")
        self._deadline = time.monotonic() + delay

    def _boot_kernel(self) -> None:
        self._say("\r\n" + KERNEL_LOG + LOGIN_PROMPT)
        self._line = ""
        self._set_state("login")

    # -- keys ----------------------------------------------------------------------------------

    def _key(self, char: str) -> None:
        if self.state in ("off", "reset"):
            return
        if self._sysrq_until and self.state in ("login", "password", "shell"):
            if time.monotonic() <= self._sysrq_until:
                self._sysrq_until = 0.0
                self._sysrq(char)
                return
            self._sysrq_until = 0.0
        if self.state == "countdown":
            self._deadline = None
            self._say(f"\r\n{UBOOT_PROMPT}")
            self._set_state("uboot")
            return
        if char in "\r\n":
            if char == "\n" and self._after_cr:
                self._after_cr = False
                return
            self._after_cr = char == "\r"
            line, self._line = self._line, ""
            self._say("\r\n")
            self._enter(line)
            return
        self._after_cr = False
        if char == "\x03":
            self._line = ""
            self._say("<INTERRUPT>\r\n" if self.state == "uboot" else "^C\r\n")
            self._prompt()
        elif char in "\x7f\x08":
            if self._line:
                self._line = self._line[:-1]
                if self.state != "password":
                    self._say("\b \b")
        elif char.isprintable():
            self._line += char
            if self.state != "password":
                self._say(char)

    def _prompt(self) -> None:
        prompts = {"uboot": UBOOT_PROMPT, "login": LOGIN_PROMPT, "password": "Password: ", "shell": SHELL_PROMPT}
        self._say(prompts[self.state])

    # After a line, the prompt of the new state, unless the command printed its own (boot, reset...).
    _PROMPT_AFTER = {
        ("uboot", "uboot"),
        ("login", "login"),
        ("login", "password"),
        ("password", "login"),
        ("password", "shell"),
        ("shell", "shell"),
        ("shell", "login"),
    }

    def _enter(self, line: str) -> None:
        before = self.state
        if self.state == "uboot":
            self._uboot(line.split())
        elif self.state == "login":
            self._login_user = line.strip()
            self._set_state("password" if self._login_user else "login")
        elif self.state == "password":
            if self._login_user == "root":
                self._set_state("shell")
            else:
                self._say("\r\nLogin incorrect\r\n")
                self._set_state("login")
        elif self.state == "shell":
            self._shell(line.strip())
        if (before, self.state) in self._PROMPT_AFTER:
            self._prompt()

    def _uboot(self, words: list[str]) -> None:
        if not words:
            return
        command, args = words[0], words[1:]
        if command == "help":
            self._say(HELP)
        elif command == "version":
            self._say("U-Boot 2024.04-sim (Apr 01 2024 - 12:00:00 +0000)\r\n\r\naarch64-linux-gnu-gcc (GCC) 13.2.0\r\n")
        elif command == "echo":
            self._say(" ".join(args) + "\r\n")
        elif command == "printenv":
            names = args or sorted(self.env)
            for name in names:
                if name in self.env:
                    self._say(f"{name}={self.env[name]}\r\n")
                else:
                    self._say(f'## Error: "{name}" not defined\r\n')
        elif command == "setenv" and args:
            if len(args) == 1:
                self.env.pop(args[0], None)
            else:
                self.env[args[0]] = " ".join(args[1:])
        elif command == "reset":
            self._say("resetting ...\r\n")
            self._boot()
        elif command in ("boot", "bootm"):
            self._boot_kernel()
        elif command == "unplug":
            self.line.unplug()
            self._set_state("off")
        else:
            self._say(f"Unknown command '{command}' - try 'help'\r\n")

    def _shell(self, command: str) -> None:
        words = command.split()
        if not words:
            return
        if words[0] == "uname":
            self._say("Linux simboard 6.6.0-sim #1 SMP PREEMPT aarch64 GNU/Linux\r\n")
        elif words[0] == "echo":
            self._say(" ".join(words[1:]) + "\r\n")
        elif command == "cat /proc/cmdline":
            self._say("console=ttyS2,115200 root=/dev/mmcblk0p2 rw\r\n")
        elif words[0] == "exit":
            self._say("\r\n")
            self._set_state("login")
        elif words[0] == "reboot":
            self._say("[   42.000000] reboot: Restarting system\r\n")
            self._boot()
        else:
            self._say(f"-sh: {words[0]}: not found\r\n")

    def _sysrq(self, char: str) -> None:
        if char == "h":
            self._say(f"\r\n[   12.345678] {SYSRQ_HELP}\r\n")
        elif char == "b":
            self._say("\r\n[   12.345678] sysrq: Resetting\r\n")
            self._boot()
        else:
            self._say(f"\r\n[   12.345678] sysrq: unknown key {char!r}\r\n")
