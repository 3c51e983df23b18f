"""Both sides of the network package's test_shell.py: `jmp shell` run as a real process, and the clients
its scripts run.

In the test process, `run_jmp_shell` runs ``jmp shell --exporter-config FILE -- sh -c SCRIPT``
(with `jumpstarter.testing.Commands`). Inside the shell, the scripts run this file as a
program (``client <command> ...``, defined by `PRELUDE`): small clients of the standard
library that reach the forwards the way any program would, and print one line per result,
so that the test compares the shell's stdout with exact lines.
"""

from __future__ import annotations

import hashlib
import socket
import sys
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jumpstarter.testing import CommandResult

SHELL_TIMEOUT = 30.0
# How long a client waits for an answer: far longer than any answer takes, so that a hang
# shows as a failed line ("no answer") rather than as a stuck test.
CLIENT_TIMEOUT = 10.0

# Shell functions for the scripts. A forward runs as a background job whose stdout goes to
# a file: its first line is the address it listens on.
PRELUDE = """\
client() { "$NETWORK_SHELL_PYTHON" "$NETWORK_SHELL_HELPERS" "$@"; }

# A background job of a non-interactive shell starts with SIGINT ignored (POSIX), and
# Python leaves an ignored SIGINT ignored: this restores the default, as an interactive
# shell's job control does, so that `kill -INT` reaches the forward as Ctrl-C would. It
# execs the command, which keeps its pid ($!); a shell function would stand in between.
DEFAULT_SIGINT='import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execvp(sys.argv[1], sys.argv[1:])'

# start_forward FILE J-ARGS...: run `j J-ARGS` in the background with its stdout in FILE;
# once it printed its address, set $address and $forward (its pid) and print address=...
start_forward() {
    out=$1
    shift
    : > "$out"
    "$NETWORK_SHELL_PYTHON" -c "$DEFAULT_SIGINT" j "$@" > "$out" &
    forward=$!
    until [ "$(wc -l < "$out")" -ge 1 ]; do
        if ! kill -0 "$forward" 2>/dev/null; then
            wait "$forward"
            echo "the forward exited with status $? before printing its address"
            exit 1
        fi
        sleep 0.02
    done
    read -r address < "$out"
    echo "address=$address"
}

# stop_forward SIGNAL: send SIGNAL to the forward, wait for its end, print exit=STATUS.
stop_forward() {
    kill -"$1" "$forward"
    wait "$forward"
    echo "exit=$?"
}
"""


def run_jmp_shell(config: str, script: str, directory: Path) -> CommandResult:
    """Run `script` (after `PRELUDE`) with sh in ``jmp shell`` serving `config`, in `directory`.

    `jumpstarter.testing.Commands` runs it: a session of its own, output in files, and a
    process left in its group fails the test.
    """
    from jumpstarter.testing import Commands

    directory.mkdir(parents=True, exist_ok=True)
    config_path = directory / "exporter.yaml"
    config_path.write_text(config)
    with Commands(
        directory,
        COLUMNS="80",  # click wraps help texts to the terminal's width; there is none here
        NETWORK_SHELL_PYTHON=sys.executable,
        NETWORK_SHELL_HELPERS=str(Path(__file__).resolve()),
    ) as commands:
        return commands.shell(config_path, "sh", "-c", PRELUDE + script, timeout=SHELL_TIMEOUT)


def digest(content: bytes) -> str:
    """How the http-get client prints a page: its length and the start of its SHA-256."""
    return f"{len(content)} {hashlib.sha256(content).hexdigest()[:16]}"


# -- the clients the scripts run (``client COMMAND ARGS...``) ----------------------------------


def _stream_address(address: str) -> tuple[int, str | tuple[str, int]]:
    """A forward's printed address: a Unix socket's path, or host:port."""
    if address.startswith("/"):
        return socket.AF_UNIX, address
    host, _, port = address.rpartition(":")
    return socket.AF_INET, (host, int(port))


def _receive_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def http_get(address: str, *paths: str) -> None:
    """Fetch each path from the HTTP server at `address`; print ``path status length sha256``."""
    for path in paths:
        with urllib.request.urlopen(f"http://{address}/{path}", timeout=CLIENT_TIMEOUT) as page:
            print(path, page.status, digest(page.read()))


def echo(address: str, message: str) -> None:
    """Send `message` over a new connection, end our side, print everything received until the end."""
    family, target = _stream_address(address)
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(CLIENT_TIMEOUT)
        sock.connect(target)
        sock.sendall(message.encode())
        sock.shutdown(socket.SHUT_WR)
        print(_receive_all(sock).decode())


def udp_echo(address: str, *messages: str) -> None:
    """Send each message as a datagram from one socket; print each answer's repr (b'' for an empty one)."""
    _, target = _stream_address(address)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(CLIENT_TIMEOUT)
        for message in messages:
            sock.sendto(message.encode(), target)
            try:
                print(repr(sock.recv(1 << 16)))
            except TimeoutError:
                print("no answer")


def request(address: str, message: str) -> None:
    """Connect, send `message` and read the answer: print how the connection ended.

    ``reset`` (the peer reset it: no answer can pass for a whole one), ``ended: <data>`` (a
    clean end of stream after `data`), or ``no answer`` (nothing within CLIENT_TIMEOUT).
    """
    family, target = _stream_address(address)
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(CLIENT_TIMEOUT)
        try:
            sock.connect(target)
            sock.sendall(message.encode())
            print(f"ended: {_receive_all(sock)!r}")
        # A reset shows when connecting (a connect with a timeout checks the socket's error after the
        # handshake: a reset at once is already there), when sending (EPIPE) or when receiving.
        except (ConnectionResetError, BrokenPipeError):
            print("reset")
        except TimeoutError:
            print("no answer")


def closed(kind: str, address: str) -> None:
    """Print whether a stopped forward's address is gone.

    tcp and udp: ``refused`` when nothing listens there (a UDP port answers "port
    unreachable", which loopback delivers at once), else ``open``. unix: whether the socket
    and its (private) directory were removed.
    """
    if kind == "unix":
        path = Path(address)
        socket_state = "left" if path.exists() else "removed"
        directory_state = "left" if path.parent.exists() else "removed"
        print(f"socket {socket_state}, directory {directory_state}")
        return
    _, target = _stream_address(address)
    kinds = {"tcp": socket.SOCK_STREAM, "udp": socket.SOCK_DGRAM}
    with socket.socket(socket.AF_INET, kinds[kind]) as sock:
        sock.settimeout(CLIENT_TIMEOUT)
        try:
            sock.connect(target)
            if kind == "udp":
                sock.send(b"anyone?")
                sock.recv(1 << 16)
            print("open")
        except ConnectionRefusedError:
            print("refused")
        except TimeoutError:  # a UDP port that takes datagrams and does not answer
            print("open")


COMMANDS = {"http-get": http_get, "echo": echo, "udp-echo": udp_echo, "request": request, "closed": closed}

if __name__ == "__main__":
    COMMANDS[sys.argv[1]](*sys.argv[2:])
