"""Fixtures of the serial drivers' tests: simulated boards on real lines, and ser2net."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from testsupport.board import Board, TcpLine
from testsupport.pty import PseudoTerminal

TESTS = Path(__file__).resolve().parent

SER2NET_CANDIDATES = ("/usr/sbin/ser2net", "/usr/local/sbin/ser2net")


_PYSERIAL_DEPRECATIONS = "ignore:set(Daemon|Name)\\(\\) is deprecated:DeprecationWarning"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # pyserial 3.5's rfc2217 client calls Thread.setDaemon() and setName(), deprecated since Python 3.10.
    for item in items:
        if Path(str(item.fspath)).parent == TESTS:
            item.add_marker(pytest.mark.filterwarnings(_PYSERIAL_DEPRECATIONS))


@pytest.fixture
def pty_line() -> Iterator[PseudoTerminal]:
    """A pseudo-terminal: the driver opens ``pty_line.url``, the test or a board drives the other side."""
    with PseudoTerminal() as line:
        yield line


@pytest.fixture
def board(pty_line: PseudoTerminal) -> Iterator[Board]:
    """A simulated board behind a pseudo-terminal, not yet powered on (``board.power_on()``)."""
    with Board(pty_line, autoboot=5) as simulated:
        yield simulated


@pytest.fixture
def rfc2217_board() -> Iterator[Board]:
    """A simulated board behind an RFC 2217 server that hands it DTR, RTS and breaks; ``board.line.url``."""
    with TcpLine(rfc2217=True) as line, Board(line, autoboot=5) as simulated:
        yield simulated


@pytest.fixture
def socket_board() -> Iterator[Board]:
    """A simulated board behind a raw TCP server (``socket://``); ``board.line.url``."""
    with TcpLine() as line, Board(line, autoboot=5) as simulated:
        yield simulated


def ser2net_executable() -> str:
    for candidate in (shutil.which("ser2net"), *SER2NET_CANDIDATES):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    if os.environ.get("CI"):
        pytest.fail("ser2net is not installed, and CI must install it (apt-get install ser2net)")
    pytest.skip("ser2net is not installed (apt-get install ser2net)")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening(port: int) -> bool:
    """Whether something listens on 127.0.0.1:port, seen in /proc without connecting (ser2net opens the device
    for every connection)."""
    local = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as table:
        return any(line.split()[1] == local and line.split()[3] == "0A" for line in table.readlines()[1:])


@pytest.fixture
def ser2net(pty_line: PseudoTerminal, tmp_path: Path) -> Iterator[str]:
    """ser2net (the distribution's) serving `pty_line` over RFC 2217 on 127.0.0.1; yields the URL to open.

    The URL carries ``ign_set_control``: ser2net does not acknowledge DTR and RTS changes on a
    pseudo-terminal (it has no such lines), and pyserial sets both when it opens a port.
    """
    executable = ser2net_executable()
    log = open(tmp_path / "ser2net.log", "wb")  # noqa: SIM115 - closed below
    process = None
    try:
        for _ in range(5):
            port = _free_port()
            config = tmp_path / "ser2net.yaml"
            config.write_text(
                "connection: &con01\n"
                f"  accepter: telnet(rfc2217),tcp,127.0.0.1,{port}\n"
                f"  connector: serialdev,{pty_line.url},115200n81,local\n"
                "  options:\n"
                "    kickolduser: true\n"
            )
            process = subprocess.Popen(
                [executable, "-n", "-d", "-u", "-c", str(config), "-P", str(tmp_path / "ser2net.pid")],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            deadline = time.monotonic() + 5
            while process.poll() is None and not _listening(port) and time.monotonic() < deadline:
                time.sleep(0.02)
            if process.poll() is None and _listening(port):
                break
            process.kill()
            process.wait()
            process = None
        if process is None:
            pytest.fail(f"ser2net did not start: {(tmp_path / 'ser2net.log').read_text(errors='replace')}")
        yield f"rfc2217://127.0.0.1:{port}?ign_set_control"
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()
