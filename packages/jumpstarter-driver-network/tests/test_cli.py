"""The command line of NetworkClient (what ``j <name> ...`` runs), through the real client of a served driver."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result
from jumpstarter_driver_network.driver import EchoNetwork, TcpNetwork, UdpNetwork, UnixNetwork

from jumpstarter.testing import serve
from testsupport.network import UdpPeer, free_port, recv_all


def invoke(client: Any, *args: str) -> Result:
    return CliRunner().invoke(client.cli(), list(args))


@contextmanager
def running_command(group: click.Group, *args: str) -> Iterator[Callable[[], Result]]:
    """Run a long-running command in a thread; yield a function that stops it and returns its result.

    The commands wait on a threading.Event passed as the context's obj: setting it stops them.
    """
    stop = threading.Event()
    outcome: list[Result] = []
    thread = threading.Thread(
        target=lambda: outcome.append(CliRunner().invoke(group, list(args), obj=stop)), name="cli-command"
    )
    thread.start()

    def finish() -> Result:
        stop.set()
        thread.join(timeout=20)
        assert not thread.is_alive(), "the command did not stop"
        return outcome[0]

    try:
        yield finish
    finally:
        if thread.is_alive():
            finish()


def wait_for_tcp(address: tuple[str, int]) -> socket.socket:
    deadline = time.monotonic() + 10
    while True:
        try:
            return socket.create_connection(address, timeout=10)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def wait_for_unix(path: Path) -> socket.socket:
    """A connection to the Unix socket at `path` once it listens (its file appears at bind(), before listen())."""
    deadline = time.monotonic() + 10
    while True:
        sock = socket.socket(socket.AF_UNIX)
        sock.settimeout(10)
        try:
            sock.connect(str(path))
            return sock
        except (FileNotFoundError, ConnectionRefusedError):
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


# -- address -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("driver", "args", "expected"),
    [
        (TcpNetwork(host="192.0.2.7", port=2222), [], "192.0.2.7:2222"),
        (TcpNetwork(host="192.0.2.7", port=2222), ["--host"], "192.0.2.7"),
        (TcpNetwork(host="192.0.2.7", port=2222), ["--port"], "2222"),
        (TcpNetwork(host="192.0.2.7", port=2222), ["--host", "--port"], "192.0.2.7:2222"),
        (UdpNetwork(host="2001:db8::7", port=69), [], "[2001:db8::7]:69"),
        (UdpNetwork(host="2001:db8::7", port=69), ["--host"], "2001:db8::7"),
        (UnixNetwork(path="/run/qemu/monitor.sock"), [], "/run/qemu/monitor.sock"),
    ],
)
def test_address(driver: Any, args: list[str], expected: str) -> None:
    with serve(driver) as client:
        result = invoke(client, "address", *args)
    assert result.exit_code == 0, result.output
    assert result.stdout == expected + "\n"


def test_address_of_a_unix_socket_has_no_port() -> None:
    with serve(UnixNetwork(path="/run/x.sock")) as client:
        result = invoke(client, "address", "--port")
    assert result.exit_code == 1
    assert "has no port" in result.output


def test_address_hidden_or_missing_is_a_clear_error() -> None:
    with serve(TcpNetwork(host="192.0.2.7", port=22, enable_address=False)) as client:
        result = invoke(client, "address")
    assert result.exit_code == 1
    assert "enable_address is false" in result.output
    assert "Traceback" not in result.output
    with serve(EchoNetwork()) as client:
        result = invoke(client, "address")
    assert result.exit_code == 1
    assert "this driver has no address" in result.output


def test_help_lists_the_commands() -> None:
    with serve(EchoNetwork()) as client:
        result = invoke(client, "--help")
    assert result.exit_code == 0
    for command in ("address", "forward-tcp", "forward-unix", "forward-udp"):
        assert command in result.output


# -- forwards ------------------------------------------------------------------------------


def test_forward_tcp_runs_until_stopped(tcp_echo: tuple[str, int]) -> None:
    port = free_port()
    with serve(TcpNetwork(host=tcp_echo[0], port=tcp_echo[1])) as client:
        with running_command(client.cli(), "forward-tcp", str(port)) as finish:
            for request in (b"one", b"two"):  # each connection its own stream
                with wait_for_tcp(("127.0.0.1", port)) as sock:
                    sock.sendall(request)
                    sock.shutdown(socket.SHUT_WR)
                    assert recv_all(sock) == request + b"<bye>"
            result = finish()
        assert result.exit_code == 0, result.output
        assert result.stdout == f"127.0.0.1:{port}\n"  # the address alone on stdout, for scripts
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()


def test_forward_tcp_on_a_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with serve(EchoNetwork()) as client:
            result = invoke(client, "forward-tcp", str(port))
    assert result.exit_code == 1
    assert f"cannot listen on TCP 127.0.0.1:{port}:" in result.output
    assert "Traceback" not in result.output


def test_forward_unix_runs_until_stopped_and_removes_its_socket(unix_echo: str, short_tmp: Path) -> None:
    path = short_tmp / "cli.sock"
    with (
        serve(UnixNetwork(path=unix_echo)) as client,
        running_command(client.cli(), "forward-unix", str(path)) as finish,
    ):
        with wait_for_unix(path) as sock:
            sock.sendall(b"via the cli")
            sock.shutdown(socket.SHUT_WR)
            assert recv_all(sock) == b"via the cli<bye>"
        result = finish()
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{path}\n"
    assert not path.exists()


def test_forward_udp_runs_until_stopped(udp_echo: UdpPeer) -> None:
    port = free_port(socket.SOCK_DGRAM)
    with (
        serve(UdpNetwork(host=udp_echo.address[0], port=udp_echo.address[1])) as client,
        running_command(client.cli(), "forward-udp", str(port)) as finish,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock,
    ):
        sock.settimeout(0.2)
        deadline = time.monotonic() + 10
        while True:  # until the forward listens: datagrams sent before are lost
            sock.sendto(b"ping", ("127.0.0.1", port))
            try:
                assert sock.recv(100) == b"ping"
                break
            except (TimeoutError, ConnectionRefusedError):
                assert time.monotonic() < deadline, "the UDP forward did not answer"
        result = finish()
    assert result.exit_code == 0, result.output
    assert result.stdout == f"127.0.0.1:{port}\n"


@pytest.mark.parametrize(
    ("driver", "message"),
    [
        (EchoNetwork(), "driver 'root' is a byte stream, not a UDP port: forward-udp needs a UdpNetwork driver"),
        (
            TcpNetwork(host="192.0.2.7", port=22),
            "driver 'root' reaches tcp://192.0.2.7:22, not a UDP port: forward-udp needs a UdpNetwork driver",
        ),
    ],
    ids=["byte-stream", "tcp-port"],
)
def test_forward_udp_through_a_stream_only_driver_is_refused_at_start(driver: Any, message: str) -> None:
    port = free_port(socket.SOCK_DGRAM)
    with serve(driver) as client:
        result = invoke(client, "forward-udp", str(port))  # would run until stopped if it started
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"Error: {message}"), result.output
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", port))  # nothing was listening


# -- as a process, stopped by a signal -------------------------------------------------------

SCRIPT = textwrap.dedent(
    """
    import sys
    from jumpstarter.testing import serve
    from jumpstarter_driver_network.driver import EchoNetwork

    with serve(EchoNetwork()) as client:
        client.cli().main(sys.argv[1:], prog_name="j net", standalone_mode=True)
    """
)


@pytest.mark.parametrize(("stop", "command"), [(signal.SIGTERM, "forward-tcp"), (signal.SIGINT, "forward-unix")])
def test_forward_as_a_command_stops_cleanly_on_a_signal(stop: signal.Signals, command: str) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        address = process.stdout.readline().strip()  # printed once it listens
        assert address, process.stderr.read() if process.stderr else ""
        if command == "forward-tcp":
            host, _, port = address.rpartition(":")
            target: Any = (host, int(port))
            family = socket.AF_INET
        else:
            target, family = address, socket.AF_UNIX
        with socket.socket(family) as sock:
            sock.settimeout(10)
            sock.connect(target)
            sock.sendall(b"echo me")
            sock.shutdown(socket.SHUT_WR)
            assert recv_all(sock) == b"echo me"
        process.send_signal(stop)
        assert process.wait(timeout=20) == 0, process.stderr.read() if process.stderr else ""
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()
    if command == "forward-unix":
        assert not os.path.exists(address)
        assert not os.path.exists(os.path.dirname(address))  # its private directory too
