"""`jmp exporter run` against stuck hardware, frozen processes and hostile peers, as real processes.

Memory and descriptor limits are set on the exporter process with the same wrapper
(`limited`), so that a test that would exhaust them fails instead of taking the machine's.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from jumpstarter.client.connect import connect
from jumpstarter.common.exceptions import DriverError, ExporterConnectionLost

CONFIG = """\
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata:
  name: rack-9
export:
  stuck:
    type: stuck_drivers.Stuck
    config:
      journal: {stuck_journal}
      hang_reset: {hang_reset}
      port: {port}
  counter:
    type: exporter_drivers.Counter
    config:
      journal: {counter_journal}
"""

# Sets limits on the process it then becomes (same pid, so that signals and group kills reach it).
LIMITED = (
    "import os, resource, sys\n"
    "for name, soft in zip(sys.argv[1::2][:2], sys.argv[2::2][:2]):\n"
    "    limit = getattr(resource, name)\n"
    "    resource.setrlimit(limit, (int(soft), resource.getrlimit(limit)[1]))\n"
    "os.execvp(sys.argv[5], sys.argv[5:])\n"
)

EMPTY_UUID = "00000000-0000-0000-0000-000000000000"


@dataclass
class Exporter:
    running: Any
    stderr: str
    unix: str | None
    tcp: str | None
    state: Path

    @property
    def pid(self) -> int:
        return int(self.running.pid)

    def credentials(self) -> dict[str, Any]:
        return {"tls_ca": (self.state / "tls.crt").read_bytes(), "token": (self.state / "token").read_text().strip()}

    def memory_mib(self) -> float:
        status = Path(f"/proc/{self.pid}/status").read_text()
        return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)[1]) / 1024  # type: ignore[index]


def journal(path: Path) -> list[str]:
    return [line.split()[0] for line in path.read_text().splitlines()] if path.exists() else []


def wait_until(condition: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


@pytest.fixture
def start(commands: Any, write: Callable[[str, str], Path], tmp_path: Path) -> Callable[..., Exporter]:
    """Start `jmp exporter run` on the config above; wait until it serves."""

    def start(
        *arguments: str, hang_reset: bool = False, port: int = 1, address_space_mib: int = 0, files: int = 0
    ) -> Exporter:
        config = write(
            "rack-9.yaml",
            CONFIG.format(
                stuck_journal=tmp_path / "stuck.txt",
                counter_journal=tmp_path / "counter.txt",
                hang_reset=str(hang_reset).lower(),
                port=port,
            ),
        )
        state = tmp_path / "state"
        argv = ["jmp", "exporter", "run", "--config", str(config), "--state-dir", str(state), *arguments]
        if address_space_mib or files:
            limits = ["RLIMIT_AS", str(address_space_mib << 20 or resource.RLIM_INFINITY)]
            limits += ["RLIMIT_NOFILE", str(files or resource.getrlimit(resource.RLIMIT_NOFILE)[0])]
            argv = [sys.executable, "-c", LIMITED, *limits, *argv]
        # Fewer malloc arenas: the address space an exporter needs does not grow with its threads.
        running = commands.start(*argv, MALLOC_ARENA_MAX="2")
        expected = ("--tcp" in arguments) + ("--unix" in arguments or "--tcp" not in arguments)
        running.wait_for(lambda out, err: err.count("serving on") == expected)
        stderr = running.output()[1]
        unix = re.search(r"serving on (/\S+)$", stderr, re.MULTILINE)
        tcp = re.search(r"serving on (\d+\.\d+\.\d+\.\d+:\d+)", stderr)
        return Exporter(running, stderr, unix and unix[1], tcp and tcp[1], state)

    return start


@contextmanager
def calling_in_background(client: Any, method: str, *args: Any) -> Iterator[list[BaseException | str]]:
    """Call `method` in a thread; the list receives its result or exception."""
    outcome: list[BaseException | str] = []

    def call() -> None:
        try:
            outcome.append(client.stuck.call(method, *args))
        except BaseException as error:
            outcome.append(error)

    thread = threading.Thread(target=call)
    thread.start()
    try:
        yield outcome
    finally:
        thread.join(60)


# -- stopping with stuck hardware ------------------------------------------------------------


def test_sigterm_stops_within_the_grace_and_names_the_stuck_call(start: Any, tmp_path: Path) -> None:
    exporter = start()
    with connect(exporter.unix) as client, calling_in_background(client, "block", 120):
        wait_until(lambda: "block" in journal(tmp_path / "stuck.txt"), what="the call to start")
        began = time.monotonic()
        os.kill(exporter.pid, signal.SIGTERM)
        result = exporter.running.finish(timeout=40)
        took = time.monotonic() - began
    assert result.returncode == 0, result
    assert took < 25, f"stopped after {took:.0f} s"  # the 10 s grace and a second for calls, not 120 s
    assert re.search(r"left behind: Stuck\.block\(\) of driver 'stuck' \(running for \d+ s\)", result.stderr), result
    # What could be closed was closed; the stuck driver was not closed under its running call.
    assert journal(tmp_path / "counter.txt") == ["reset", "close"]
    assert journal(tmp_path / "stuck.txt") == ["reset", "block"]
    assert "Traceback" not in result.stderr


def test_the_same_signal_again_stops_at_once(start: Any, tmp_path: Path) -> None:
    exporter = start()
    with connect(exporter.unix) as client, calling_in_background(client, "block", 120) as outcome:
        wait_until(lambda: "block" in journal(tmp_path / "stuck.txt"), what="the call to start")
        os.kill(exporter.pid, signal.SIGTERM)
        exporter.running.wait_for(lambda out, err: "stopping (SIGTERM)" in err)
        began = time.monotonic()
        os.kill(exporter.pid, signal.SIGINT)
        result = exporter.running.finish(timeout=10)
        assert time.monotonic() - began < 5
    assert result.returncode == 128 + signal.SIGINT, result
    assert "stopped at once (SIGINT again): left running: Stuck.block() of driver 'stuck'" in result.stderr
    assert isinstance(outcome[0], DriverError)  # the exporter is gone (or cancelled the call first)


def test_a_reset_that_hangs_neither_holds_clients_nor_the_stop(start: Any, tmp_path: Path) -> None:
    exporter = start(hang_reset=True)
    began = time.monotonic()
    expected = rf"the exporter at {re.escape(exporter.unix)} did not answer within 2 s"
    with pytest.raises(ExporterConnectionLost, match=expected), connect(exporter.unix, answer_timeout=2):
        pass
    assert time.monotonic() - began < 10
    os.kill(exporter.pid, signal.SIGTERM)
    result = exporter.running.finish(timeout=40)
    assert result.returncode == 0, result
    assert "Stuck.reset() of driver 'stuck'" in result.stderr and "left behind" in result.stderr
    assert journal(tmp_path / "counter.txt") == []  # reset after the stuck driver: never reached


def test_a_frozen_exporter_is_noticed_within_seconds_over_tcp_and_unix(start: Any, tmp_path: Path) -> None:
    socket_path = str(tmp_path / "rack-9.sock")
    exporter = start("--unix", socket_path, "--tcp", "127.0.0.1:0")
    with ExitStack() as stack:
        unix = stack.enter_context(connect(socket_path))
        tcp = stack.enter_context(connect(exporter.tcp, **exporter.credentials()))
        calls = [stack.enter_context(calling_in_background(client, "block", 60)) for client in (unix, tcp)]
        wait_until(lambda: journal(tmp_path / "stuck.txt").count("block") == 2, what="both calls to start")
        os.kill(exporter.pid, signal.SIGSTOP)
        try:
            frozen = time.monotonic()
            wait_until(lambda: all(calls), timeout=25, what="both clients to notice")
            noticed = time.monotonic() - frozen
        finally:
            os.kill(exporter.pid, signal.SIGCONT)
            exporter.running.kill()
    assert noticed < 20, f"noticed after {noticed:.0f} s"
    for outcome in calls:
        assert isinstance(outcome[0], ExporterConnectionLost), outcome


# -- the configuration, once at start ---------------------------------------------------------


def test_drivers_that_cannot_be_created_are_refused_at_start(commands: Any, write: Any, tmp_path: Path) -> None:
    config = write(
        "rack-9.yaml",
        CONFIG.format(stuck_journal=tmp_path / "s", counter_journal=tmp_path / "c", hang_reset="false", port=70000),
    )
    result = commands.run("jmp", "exporter", "run", "--config", config, "--state-dir", tmp_path / "state")
    assert result.returncode == 2, result
    assert "rack-9.yaml:" in result.stderr and "port 70000 is out of range (1 to 65535)" in result.stderr
    assert "serving on" not in result.stderr and "Traceback" not in result.stderr


# -- hostile peers ------------------------------------------------------------------------------


def _empty_values(uuid: str, count: int) -> bytes:
    """A DriverCallRequest of `uuid`.ping with `count` empty JSON values: two bytes each on the wire."""
    return b"\x0a" + bytes([len(uuid)]) + uuid.encode() + b"\x12\x04ping" + b"\x1a\x00" * count


def test_huge_bodies_are_refused_without_taking_the_exporters_memory(start: Any) -> None:
    # A body of 20 million empty values: parsed, it would take a gigabyte or more.
    exporter = start("--tcp", "127.0.0.1:0", address_space_mib=1536)
    credentials = exporter.credentials()
    body = _empty_values(EMPTY_UUID, 20_000_000)
    options = [("grpc.max_send_message_length", 256 << 20)]
    tls = grpc.ssl_channel_credentials(credentials["tls_ca"])
    before = exporter.memory_mib()
    with grpc.secure_channel(exporter.tcp, tls, options=options) as channel:
        call = channel.unary_unary("/jumpstarter.v1.ExporterService/DriverCall")
        for _ in range(3):
            with pytest.raises(grpc.RpcError) as refused:
                call(body, timeout=30)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    assert exporter.memory_mib() - before < 150, "the bodies were read or kept"

    # With the token, the values are counted before they are parsed, off the event loop.
    with connect(exporter.tcp, **credentials) as client:
        uuid = str(client.stuck.uuid)
        pings: list[float] = []
        done = threading.Event()

        def ping() -> None:
            while not done.is_set():
                began = time.monotonic()
                client.stuck.call("ping")
                pings.append(time.monotonic() - began)
                time.sleep(0.01)

        pinger = threading.Thread(target=ping)
        pinger.start()
        metadata = (("authorization", f"Bearer {credentials['token']}"),)
        try:
            with grpc.secure_channel(exporter.tcp, tls, options=options) as channel:
                call = channel.unary_unary("/jumpstarter.v1.ExporterService/DriverCall")
                with pytest.raises(grpc.RpcError) as refused:
                    call(_empty_values(uuid, 20_000_000), timeout=60, metadata=metadata)
        finally:
            done.set()
            pinger.join()
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert "more than 1,000,000 values" in refused.value.details()  # type: ignore[attr-defined]
    assert max(pings) < 2.5, f"the event loop stalled for {max(pings):.1f} s"
    assert exporter.running.process.poll() is None


def _connect_from(host: str, port: int, source: str) -> socket.socket:
    connection = socket.socket()
    connection.bind((source, 0))
    connection.connect((host, port))
    return connection


def test_idle_connections_do_not_lock_clients_out(start: Any) -> None:
    # The usual soft limit of 1,024 descriptors, which 1,100 idle connections would exhaust.
    exporter = start("--tcp", "127.0.0.1:0", files=1024)
    limits = Path(f"/proc/{exporter.pid}/limits").read_text()
    soft = int(re.search(r"^Max open files\s+(\d+)", limits, re.MULTILINE)[1])  # type: ignore[index]
    assert soft > 1024 or soft == resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    host, port = exporter.tcp.rsplit(":", 1)
    ours = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (ours[1], ours[1]))
    connections: list[socket.socket] = []
    try:
        # 1,100 connections from 38 addresses that never say a word...
        for index in range(1100):
            connections.append(_connect_from(host, int(port), f"127.0.0.{2 + index % 38}"))
        # ...and 100 from one address, more than one peer may hold.
        greedy = [_connect_from(host, int(port), "127.0.0.250") for _ in range(100)]
        connections += greedy
        time.sleep(0.5)
        closed = 0
        for connection in greedy:
            connection.setblocking(False)
            try:
                closed += connection.recv(1) == b""
            except ConnectionResetError:
                closed += 1
            except BlockingIOError:
                pass
        assert closed == 100 - 64, f"{closed} of the 100 connections from one peer were closed"
        with connect(exporter.tcp, **exporter.credentials(), answer_timeout=10) as client:
            assert client.stuck.call("ping") == "pong"
    finally:
        for connection in connections:
            connection.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, ours)


def test_secrets_that_others_can_read_are_refused(start: Any, commands: Any, tmp_path: Path) -> None:
    exporter = start("--tcp", "127.0.0.1:0")
    os.kill(exporter.pid, signal.SIGTERM)
    exporter.running.finish()
    config = tmp_path / "rack-9.yaml"
    token = exporter.state / "token"
    token.chmod(0o644)
    result = commands.run(
        "jmp", "exporter", "run", "--config", config, "--state-dir", exporter.state, "--tcp", "127.0.0.1:0"
    )
    assert result.returncode == 2, result
    assert f"the token file {token} can be read by other users (permissions 0644)" in result.stderr
    assert f"run `chmod 600 {token}`" in result.stderr
    token.chmod(0o600)
    exporter.state.chmod(0o777)
    result = commands.run(
        "jmp", "exporter", "run", "--config", config, "--state-dir", exporter.state, "--tcp", "127.0.0.1:0"
    )
    assert result.returncode == 2, result
    assert f"run `chmod go-w {exporter.state}`" in result.stderr
    exporter.state.chmod(0o700)
