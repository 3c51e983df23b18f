"""Many clients, and hostile peers, against one `jmp exporter run` over TLS.

    uv run python benchmarks/load.py                                  # 32 clients x 200 calls, then the hostile cases
    uv run python benchmarks/load.py --clients 4 --calls 20 --hostile-scale 0.02   # a quick check
    uv run python benchmarks/load.py --json out.json                  # also keep the raw figures

The exporter runs as `jmp exporter run --tcp 127.0.0.1:0` with its generated certificate and
token, started with the usual soft limit of 1,024 file descriptors, and serves a
`SyncMockPower` (sync methods: worker threads) and a `MockPower` (async).

**Load.** Each client is a process of its own: it connects over TLS with the token
(attached, as `jmp shell --host` is), makes a warm-up call, and waits; then all start at
once, and each makes its calls one after the other, alternating between the sync and the
async driver. Printed: calls per second over the whole run (first start to last end), the
median and 99th percentile of single calls, and the calls that failed.

**Hostile peers**, one after the other, against the same exporter. After each, the exporter's
resident memory (VmRSS) and its peak so far (VmHWM), and whether a client can still call:

- *unauthenticated bodies*: calls without the token whose body holds millions of empty values;
- *idle connections*: 1,100 TCP connections from one address (127.0.0.2) that never say
  anything, held while a client (from 127.0.0.1) tries to connect and call;
- *refused calls*: 2,000 calls without the token while a client is attached: how many records
  it was sent, and how many lines the exporter logged meanwhile (and, at the end, how many
  lines about refusals it logged in all);
- *many values, authenticated*: one call with millions of empty values, while another client
  pings: the call's outcome and the longest ping meanwhile.

To compare with another version of the core, run this script with ``PYTHONPATH`` pointing at
that version's ``packages/jumpstarter-core/src``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

BIN = Path(sys.executable).parent
CONFIG = """\
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata:
  name: load
export:
  sync:
    type: SyncMockPower
  async:
    type: MockPower
"""
START_TIMEOUT = 60.0


# -- the client processes -------------------------------------------------------------------


def worker(address: str, ca: Path, token: Path, calls: int) -> None:
    """One client process: connect, say `ready`, wait for a line on stdin, call, print the figures."""
    from jumpstarter.client import connect

    latencies: list[float] = []
    errors: list[str] = []
    try:
        with connect(address, tls_ca=ca.read_bytes(), token=token.read_text().strip(), unsafe=True) as client:
            client.sync.on()
            print("ready", flush=True)
            sys.stdin.readline()
            drivers = (client.sync, client.children["async"])
            for index in range(calls):
                started = time.perf_counter()
                try:
                    drivers[index % 2].on()
                except Exception as error:
                    errors.append(f"{type(error).__name__}: {error}"[:200])
                latencies.append(time.perf_counter() - started)
    except Exception as error:
        print("ready", flush=True)  # so that the others do not wait for this one
        errors.append(f"connect: {type(error).__name__}: {error}"[:200])
    print(json.dumps({"latencies": latencies, "errors": errors}), flush=True)


# -- the exporter ----------------------------------------------------------------------------


def _usual_descriptor_limit() -> None:
    # Most systems start processes with a soft limit of 1,024 descriptors (the hard one is higher).
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))


class Exporter:
    """`jmp exporter run` on 127.0.0.1 with TLS and a generated token, in its own process group."""

    def __init__(self, directory: Path) -> None:
        config = directory / "exporter.yaml"
        config.write_text(CONFIG)
        self.state = directory / "state"
        self.log = (directory / "exporter.log").open("w+")
        self.process = subprocess.Popen(
            [BIN / "jmp", "exporter", "run", "--config", config, "--tcp", "127.0.0.1:0", "--state-dir", self.state],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            start_new_session=True,
            preexec_fn=_usual_descriptor_limit,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while (match := re.search(r"serving on (\S+) with TLS", self.log_text())) is None:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the exporter did not start:\n{self.log_text()}")
            time.sleep(0.05)
        self.address = match.group(1)
        self.host, _, port = self.address.rpartition(":")
        self.port = int(port)
        self.ca = self.state / "tls.crt"
        self.token_file = self.state / "token"

    def log_text(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text()

    def memory(self) -> dict[str, float]:
        """Resident memory now and at its peak, in MiB."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        fields = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", status, re.MULTILINE))
        return {"rss_mib": int(fields["VmRSS"]) / 1024, "peak_mib": int(fields["VmHWM"]) / 1024}

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> str:
        """Stop the exporter; return its whole log."""
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        text = self.log_text()
        self.log.close()
        return text


# -- load ------------------------------------------------------------------------------------


def load(exporter: Exporter, clients: int, calls: int) -> dict[str, Any]:
    argv = [sys.executable, __file__, "--worker", exporter.address, str(exporter.ca), str(exporter.token_file)]
    processes = [
        subprocess.Popen([*argv, str(calls)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(clients)
    ]
    try:
        for process in processes:
            assert process.stdout is not None
            if process.stdout.readline().strip() != "ready":
                raise RuntimeError("a client process failed to start")
        started = time.perf_counter()
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        results = [json.loads(process.communicate(timeout=600)[0]) for process in processes]
        elapsed = time.perf_counter() - started
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    latencies = sorted(latency for result in results for latency in result["latencies"])
    errors = [error for result in results for error in result["errors"]]
    return {
        "clients": clients,
        "calls_per_client": calls,
        "calls_per_s": len(latencies) / elapsed,
        "median_ms": statistics.median(latencies) * 1000 if latencies else None,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000 if latencies else None,
        "errors": len(errors),
        "first_errors": errors[:3],
    }


# -- hostile peers ---------------------------------------------------------------------------


def _raw_channel(exporter: Exporter, token: bool) -> Any:
    import grpc

    metadata = (("authorization", f"Bearer {exporter.token_file.read_text().strip()}"),) if token else ()
    channel = grpc.secure_channel(
        exporter.address,
        grpc.ssl_channel_credentials(exporter.ca.read_bytes()),
        options=[("grpc.max_send_message_length", 256 << 20), ("grpc.max_receive_message_length", 256 << 20)],
    )
    call = channel.unary_unary("/jumpstarter.v1.ExporterService/DriverCall")
    return channel, lambda body, timeout: call(body, timeout=timeout, metadata=metadata)


def _empty_values_body(uuid: str, count: int) -> bytes:
    """A DriverCallRequest of `uuid`.on with `count` empty JSON values (two bytes each on the wire)."""
    head = b"\x0a" + bytes([len(uuid)]) + uuid.encode() + b"\x12\x02on"
    return head + b"\x1a\x00" * count


def _outcome(call: Callable[[], Any]) -> str:
    import grpc

    started = time.perf_counter()
    try:
        call()
        result = "OK"
    except grpc.RpcError as error:
        result = f"{error.code().name}: {(error.details() or '')[:80]}"  # type: ignore[attr-defined]
    return f"{result} ({time.perf_counter() - started:.2f} s)"


@contextmanager
def _client(exporter: Exporter, attach: bool = False) -> Iterator[Any]:
    from jumpstarter.client import connect

    with connect(
        exporter.address,
        tls_ca=exporter.ca.read_bytes(),
        token=exporter.token_file.read_text().strip(),
        unsafe=True,
        attach=attach,
    ) as client:
        yield client


def _client_can_call(exporter: Exporter, timeout: float = 15.0) -> str:
    """Whether a new client connects and calls within `timeout`, in a thread (a hung one is left to die)."""
    outcome: list[str] = []

    def attempt() -> None:
        started = time.perf_counter()
        try:
            with _client(exporter) as client:
                client.sync.on()
            outcome.append(f"yes ({time.perf_counter() - started:.2f} s)")
        except Exception as error:
            outcome.append(f"no: {type(error).__name__}: {str(error)[:80]}")

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else f"no: nothing after {timeout:.0f} s"


def unauthenticated_bodies(exporter: Exporter, values: int, requests: int) -> dict[str, Any]:
    channel, call = _raw_channel(exporter, token=False)
    body = _empty_values_body("00000000-0000-0000-0000-000000000000", values)
    with channel:
        outcomes = [_outcome(lambda: call(body, 120)) for _ in range(requests)]
    return {"case": f"{requests} calls without the token, {values:,} empty values each", "outcome": outcomes[-1]}


def idle_connections(exporter: Exporter, count: int) -> dict[str, Any]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, count + 256)), hard))
    sockets = []
    try:
        for _ in range(count):
            try:
                connection = socket.socket()
            except OSError:  # this process's own limit of open files
                break
            connection.settimeout(5)
            try:
                connection.bind(("127.0.0.2", 0))  # an attacker, not the client
                connection.connect((exporter.host, exporter.port))
            except OSError:
                connection.close()
                break
            sockets.append(connection)
        served = _client_can_call(exporter)
        # How many of them the exporter closed by itself.
        for connection in sockets:
            connection.setblocking(False)
        time.sleep(0.2)
        closed = 0
        for connection in sockets:
            try:
                closed += connection.recv(1) == b""
            except BlockingIOError:
                pass
            except OSError:
                closed += 1
    finally:
        for connection in sockets:
            connection.close()
    return {
        "case": f"{count:,} idle TCP connections",
        "outcome": f"{len(sockets):,} opened, {closed:,} closed by the exporter; a client served meanwhile: {served}",
    }


def refused_calls(exporter: Exporter, count: int) -> dict[str, Any]:
    relayed: list[logging.LogRecord] = []

    class Count(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            relayed.append(record)

    handler = Count()
    remote = logging.getLogger("jumpstarter.remote")
    remote.addHandler(handler)
    remote.setLevel(logging.DEBUG)
    lines_before = exporter.log_text().count("\n")
    try:
        with _client(exporter, attach=True):
            channel, call = _raw_channel(exporter, token=False)
            body = _empty_values_body("00000000-0000-0000-0000-000000000000", 1)
            with channel:
                started = time.perf_counter()
                for _ in range(count):
                    with suppress(Exception):
                        call(body, 10)
                elapsed = time.perf_counter() - started
            time.sleep(1.0)
    finally:
        remote.removeHandler(handler)
    lines = exporter.log_text().count("\n") - lines_before
    return {
        "case": f"{count:,} calls without the token, a client attached",
        "outcome": f"{count / elapsed:,.0f} refusals/s; {len(relayed):,} records sent to the client, "
        f"{lines:,} lines in the exporter's log",
    }


def many_values(exporter: Exporter, values: int) -> dict[str, Any]:
    with _client(exporter) as client:
        uuid = str(client.sync.uuid)
        pings: list[float] = []
        done = threading.Event()

        def ping() -> None:
            while not done.is_set():
                started = time.perf_counter()
                with suppress(Exception):
                    client.sync.on()
                pings.append(time.perf_counter() - started)
                time.sleep(0.01)

        channel, call = _raw_channel(exporter, token=True)
        body = _empty_values_body(uuid, values)
        pinger = threading.Thread(target=ping)
        pinger.start()
        try:
            with channel:
                outcome = _outcome(lambda: call(body, 120))
        finally:
            done.set()
            pinger.join()
    return {
        "case": f"a call with the token and {values:,} empty values, another client pinging",
        "outcome": f"{outcome}; longest ping meanwhile {max(pings) * 1000:,.0f} ms",
    }


def hostile(exporter: Exporter, scale: float) -> list[dict[str, Any]]:
    def scaled(count: int) -> int:
        return max(1, round(count * scale))

    rows = [{"case": "after the load", "outcome": ""}]
    rows[-1].update(exporter.memory())
    for case in (
        lambda: unauthenticated_bodies(exporter, scaled(4_000_000), 4),
        lambda: idle_connections(exporter, 1100),
        lambda: refused_calls(exporter, scaled(2000)),
        lambda: many_values(exporter, scaled(10_000_000)),
    ):
        if not exporter.alive():
            break
        row = case()
        if exporter.alive():
            row.update(exporter.memory())
        else:
            row["outcome"] += f" -- the exporter died (exit {exporter.process.returncode})"
        rows.append(row)
        print(f"# {row}", file=sys.stderr)
    return rows


# -- main --------------------------------------------------------------------------------------


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32, help="client processes (32)")
    parser.add_argument("--calls", type=int, default=200, help="calls per client (200)")
    parser.add_argument("--hostile-scale", type=float, default=1.0, help="multiply the sizes of the hostile cases")
    parser.add_argument("--no-hostile", action="store_true", help="only the load")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="jumpstarter-load-") as directory:
        exporter = Exporter(Path(directory))
        try:
            figures: dict[str, Any] = {"load": load(exporter, options.clients, options.calls)}
            if not options.no_hostile:
                figures["hostile"] = hostile(exporter, options.hostile_scale)
        finally:
            log = exporter.stop()
        if "hostile" in figures:
            figures["refusal_log_lines"] = sum("refus" in line for line in log.splitlines())
    if options.json:
        options.json.write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))
    result = figures["load"]
    print()
    print("| clients x calls | calls/s | median | p99 | errors |")
    print("|---|--:|--:|--:|--:|")
    print(
        f"| {result['clients']} x {result['calls_per_client']} | {result['calls_per_s']:,.0f} | "
        f"{result['median_ms']:.1f} ms | {result['p99_ms']:.1f} ms | {result['errors']} |"
    )
    if "hostile" in figures:
        print()
        print("| hostile case | outcome | exporter RSS after | peak RSS so far |")
        print("|---|---|--:|--:|")
        for row in figures["hostile"]:
            memory = (f"{row['rss_mib']:,.0f} MiB", f"{row['peak_mib']:,.0f} MiB") if "rss_mib" in row else ("—", "—")
            print(f"| {row['case']} | {row['outcome']} | {memory[0]} | {memory[1]} |")
        print()
        print(f"Lines about refusals in the exporter's whole log: {figures['refusal_log_lines']:,}")


if __name__ == "__main__":
    main()
