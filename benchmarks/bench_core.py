"""Core figures of a jumpstarter implementation: call latency, throughput, start-up and import time.

This one script runs unchanged under either implementation's python:

    uv run python benchmarks/bench_core.py                  # this project
    .cache/upstream-0.9.0/bin/python benchmarks/bench_core.py   # the original jumpstarter 0.9.0

Both share the import name `jumpstarter`, so each runs in its own environment (see
`benchmarks/run.py`, which runs both and compares them). The benchmark driver uses only the
API both implementations share (`Driver`, `export`, `exportstream`, the
`jumpstarter.client.DriverClient` client class, `serve()`); the few things that differ
(serving a session on a Unix socket, connecting a client to it) go through the small
adapters `_Ours` and `_Original`.

Cross-process figures use the realistic setup: the exporter is this script re-invoked with
`--serve` in its own process, and the client connects to its Unix socket.

Output: JSON Lines on stdout, one object per line, flushed as soon as it is known, so a
caller that has to stop a hung run still gets the figures measured until then:

    {"implementation": "ours", "version": ..., ...}     # first line
    {"figure": "unary_ping_cross_process", "median_us": ..., "p99_us": ..., ...}
    ...
    {"done": true, "seconds": ...}                     # last line

A figure that failed has an "error" key instead of its values; the others still run.
Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import resource
import select
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, asynccontextmanager, contextmanager
from typing import Any

import anyio
from anyio.streams.stapled import StapledObjectStream

from jumpstarter.driver import Driver, export, exportstream

# How long the exporter process may take to print its socket path, and to exit once asked.
EXPORTER_START_TIMEOUT = 60.0
EXPORTER_STOP_TIMEOUT = 15.0
# The longest one figure may take; the slowest take a few seconds.
FIGURE_TIMEOUT = 90.0


# -- the driver -------------------------------------------------------------------------


class BenchDriver(Driver):
    """Does nothing but answer: what is measured is the machinery around the driver.

    The parameters are left unannotated on purpose: an annotation would make this project
    validate the argument with pydantic on every call, which the original never does.
    """

    @classmethod
    def client(cls) -> str:
        # The plain client class exists in both implementations and needs no allow-listing.
        return "jumpstarter.client.DriverClient"

    @export
    def ping(self) -> None:
        return None

    @export
    async def aping(self) -> None:
        return None

    @export
    def echo(self, x):
        return x

    @export
    def count(self, n):
        # int(): the original sends every number as a JSON double.
        yield from range(int(n))

    @export
    async def acount(self, n):
        for i in range(int(n)):
            yield i

    @exportstream
    @asynccontextmanager
    async def connect(self):
        # An echo, like an echo network driver: what the client sends comes back.
        tx, rx = anyio.create_memory_object_stream(32)
        async with StapledObjectStream(tx, rx) as stream:
            yield stream


# -- what differs between the implementations -------------------------------------------


def _installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


class _Ours:
    name = "ours"
    version = _installed_version("jumpstarter-core")

    @staticmethod
    @asynccontextmanager
    async def serving(driver: Driver):
        """Serve `driver` on a Unix socket on the current event loop; yield the socket path."""
        from jumpstarter.testing import serve_socket_async

        async with serve_socket_async(driver) as path:
            yield path

    @staticmethod
    @contextmanager
    def connect(path: str):
        from jumpstarter.client import connect

        with connect(path) as client:
            yield client


class _Original:
    name = "original"
    version = _installed_version("jumpstarter")

    @staticmethod
    @asynccontextmanager
    async def serving(driver: Driver):
        # As the original's own serve_async() (jumpstarter/common/utils.py) does: its session is
        # a sync context manager, and refuses driver calls until its status says a lease is ready.
        from jumpstarter.common import ExporterStatus
        from jumpstarter.exporter import Session

        with Session(root_device=driver) as session:
            async with session.serve_unix_async() as path:
                session.update_status(ExporterStatus.LEASE_READY)
                yield str(path)

    @staticmethod
    @contextmanager
    def connect(path: str):
        # The original connects a client to a socket the way `jmp shell` hands one to a program.
        os.environ["JUMPSTARTER_HOST"] = path
        os.environ["JMP_DRIVERS_ALLOW"] = "UNSAFE"
        from jumpstarter.utils.env import env

        with env() as client:
            yield client


# The original is the distribution "jumpstarter" 0.9.0; this project is "jumpstarter-core".
IMPL = _Original if _installed_version("jumpstarter") is not None else _Ours


# -- the exporter process ---------------------------------------------------------------


def run_exporter(root: Driver | None = None) -> None:
    """`--serve`: serve a BenchDriver, print the socket path, run until stdin closes.

    The parent closes our stdin when it is done, and the pipe also closes if the parent dies,
    so the exporter cannot outlive the benchmark. SIGTERM exits cleanly too: the session is
    closed and the socket removed on the way out.
    """
    from anyio.from_thread import start_blocking_portal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(IMPL.serving(root or BenchDriver())) as path,
    ):
        print(path, flush=True)
        sys.stdin.buffer.read()


def run_power_exporter() -> None:
    """`--serve-power`: like `--serve`, with a MockPower named ``power`` for `j power on`."""
    from jumpstarter_driver_power.driver import MockPower

    from jumpstarter.driver.composite import Composite

    run_exporter(Composite(children={"power": MockPower()}))


def run_bare_server() -> None:
    """`--serve-bare`: a gRPC server with no jumpstarter in it, echoing raw bytes.

    Its figures are the floor under any implementation on this machine: what one gRPC round
    trip between two Python processes costs, with the same asyncio server and blocking client.
    """
    import tempfile

    import grpc

    async def echo(request: bytes, context: Any) -> bytes:
        return request

    async def serve() -> None:
        directory = tempfile.mkdtemp(prefix="bench-bare-")
        path = os.path.join(directory, "bare.sock")
        server = grpc.aio.server(options=_BARE_OPTIONS)
        handler = grpc.unary_unary_rpc_method_handler(echo)  # no (de)serializers: bytes as they are
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("bare.Echo", {"Call": handler})])
        server.add_insecure_port(f"unix://{path}")
        await server.start()
        print(path, flush=True)
        await anyio.to_thread.run_sync(sys.stdin.buffer.read)
        await server.stop(None)
        shutil.rmtree(directory, ignore_errors=True)  # gRPC may have removed the socket already

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    anyio.run(serve)


_BARE_OPTIONS = [("grpc.max_receive_message_length", 128 << 20), ("grpc.max_send_message_length", 128 << 20)]


class BareClient:
    """`call()` like a driver client's, over the bare server: the floor of a round trip."""

    def __init__(self, path: str) -> None:
        import grpc

        self._channel = grpc.insecure_channel(f"unix://{path}", options=_BARE_OPTIONS)
        self._call = self._channel.unary_unary("/bare.Echo/Call")

    def call(self, method: str, *args: Any) -> Any:
        answer = self._call(args[0].encode() if args else b"")
        return answer.decode() if args else None

    def close(self) -> None:
        self._channel.close()


@contextmanager
def bare_client() -> Iterator[BareClient]:
    with exporter_process("--serve-bare") as path:
        client = BareClient(path)
        try:
            yield client
        finally:
            client.close()


@contextmanager
def exporter_process(flag: str = "--serve") -> Iterator[str]:
    """Start the exporter process; yield its socket path; stop it, and check the socket is gone."""
    process = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), flag],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        ready, _, _ = select.select([process.stdout], [], [], EXPORTER_START_TIMEOUT)
        path = process.stdout.readline().strip() if ready else ""
        if not path:
            raise RuntimeError(f"the exporter process did not start (exit code {process.poll()})")
        yield path
    finally:
        process.stdin.close()
        try:
            process.wait(EXPORTER_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise RuntimeError("the exporter process did not stop when asked; killed it") from None
        finally:
            process.stdout.close()
    if os.path.exists(path):
        raise RuntimeError(f"the exporter left its socket behind: {path}")


@contextmanager
def in_process_client() -> Iterator[Any]:
    from jumpstarter.common.utils import serve

    with serve(BenchDriver()) as client:
        yield client


# -- measurements -----------------------------------------------------------------------


def _us(ns: float) -> float:
    return round(ns / 1000, 1)


# Figures compared with the bare gRPC floor are measured in rounds that alternate between
# the clients (ours, then bare gRPC, then ours again...): on a shared machine the load
# changes from second to second, and alternating spreads it evenly over both, so that their
# ratio means something even when the absolute figures move.
ROUNDS = 5


def _unary_samples(client: Any, method: str, calls: int) -> list[int]:
    samples = []
    clock = time.perf_counter_ns
    for _ in range(calls):
        start = clock()
        client.call(method)
        samples.append(clock() - start)
    return samples


def _unary_figure(samples: list[int]) -> dict[str, Any]:
    return {
        "median_us": _us(statistics.median(samples)),
        "p99_us": _us(statistics.quantiles(samples, n=100)[98]),
        "calls": len(samples),
    }


def unary_latency(client: Any, method: str, calls: int, warmup: int) -> dict[str, Any]:
    """Median and p99 latency of `client.call(method)`, one call at a time."""
    _unary_samples(client, method, warmup)
    return _unary_figure(_unary_samples(client, method, calls))


def unary_latencies(targets: dict[str, tuple[Any, str]], calls: int, warmup: int) -> dict[str, dict[str, Any]]:
    """`unary_latency` of several (client, method) pairs, in alternating rounds."""
    samples: dict[str, list[int]] = {name: [] for name in targets}
    for client, method in targets.values():
        _unary_samples(client, method, warmup)
    for _ in range(ROUNDS):
        for name, (client, method) in targets.items():
            samples[name] += _unary_samples(client, method, max(1, calls // ROUNDS))
    return {name: _unary_figure(values) for name, values in samples.items()}


_LARGE_PAYLOAD = "x" * 2**20


def _large_samples(client: Any, calls: int, payload: Any) -> list[float]:
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        client.call("echo", payload)
        samples.append(time.perf_counter() - start)
    return samples


def _large_figure(samples: list[float], payload: Any) -> dict[str, Any]:
    return {"median_ms": round(statistics.median(samples) * 1000, 2), "calls": len(samples), "bytes": len(payload)}


def large_call(client: Any, calls: int) -> dict[str, Any]:
    """Median time of echoing a 1 MiB string: encoding, transfer and decoding both ways."""
    if client.call("echo", _LARGE_PAYLOAD) != _LARGE_PAYLOAD:
        raise AssertionError("echo returned something else")
    return _large_figure(_large_samples(client, calls, _LARGE_PAYLOAD), _LARGE_PAYLOAD)


def large_calls(targets: dict[str, tuple[Any, Any]], calls: int) -> dict[str, dict[str, Any]]:
    """`large_call` of several (client, payload) pairs, in alternating rounds."""
    samples: dict[str, list[float]] = {name: [] for name in targets}
    for client, payload in targets.values():
        if client.call("echo", payload) != payload:
            raise AssertionError("echo returned something else")
    for _ in range(ROUNDS):
        for name, (client, payload) in targets.items():
            samples[name] += _large_samples(client, max(1, calls // ROUNDS), payload)
    return {name: _large_figure(values, targets[name][1]) for name, values in samples.items()}


def streaming_rate(client: Any, method: str, items: int) -> dict[str, Any]:
    """Items per second of a streaming call of `items` items, consumed as they come."""
    received, last = 0, None
    start = time.perf_counter()
    for item in client.streamingcall(method, items):
        received += 1
        last = item
    elapsed = time.perf_counter() - start
    if received != items or int(last) != items - 1:
        raise AssertionError(f"{method}({items}) yielded {received} items, the last {last!r}")
    return {"items_per_s": round(items / elapsed), "items": items, "seconds": round(elapsed, 3)}


def calibrated_items(client: Any, method: str, seconds: float, maximum: int) -> int:
    """How many items `method` streams in about `seconds`, from a short trial (at most `maximum`)."""
    trial = 2000
    start = time.perf_counter()
    for _ in client.streamingcall(method, trial):
        pass
    rate = trial / (time.perf_counter() - start)
    return max(trial, min(maximum, int(round(rate * seconds, -3))))


def stream_throughput(client: Any, chunks: int, chunk: int) -> dict[str, Any]:
    """MB/s echoed through the `connect` byte stream: one thread sends, this one receives."""
    payload = b"\xa5" * chunk
    total = chunks * chunk
    failure: list[BaseException] = []
    with client.stream("connect") as stream:

        def send_all() -> None:
            try:
                for _ in range(chunks):
                    stream.send(payload)
            except BaseException as error:  # reported below (the receive loop hits the figure's timeout)
                failure.append(error)

        sender = threading.Thread(target=send_all, daemon=True)
        start = time.perf_counter()
        sender.start()
        received = 0
        while received < total:
            received += len(stream.receive())
        elapsed = time.perf_counter() - start
        sender.join()
    if failure:
        raise failure[0]
    return {
        "mb_per_s": round(received / elapsed / 1e6, 1),
        "bytes": received,
        "chunk_bytes": chunk,
        "seconds": round(elapsed, 3),
    }


def _threaded_seconds(client: Any, method: str, threads: int, calls_per_thread: int) -> float:
    # The barrier keeps thread start-up out of the timing: all threads begin calling together.
    barrier = threading.Barrier(threads + 1)

    def work() -> None:
        barrier.wait()
        for _ in range(calls_per_thread):
            client.call(method)

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(work) for _ in range(threads)]
        barrier.wait()
        start = time.perf_counter()
        for future in futures:
            future.result()
        return time.perf_counter() - start


def threaded_rate(client: Any, method: str, threads: int, calls_per_thread: int) -> dict[str, Any]:
    """Calls per second of `method` from `threads` threads sharing one client."""
    elapsed = _threaded_seconds(client, method, threads, calls_per_thread)
    calls = threads * calls_per_thread
    return {"calls_per_s": round(calls / elapsed), "threads": threads, "calls": calls}


def threaded_rates(
    targets: dict[str, tuple[Any, str]], threads: int, calls_per_thread: int
) -> dict[str, dict[str, Any]]:
    """`threaded_rate` of several (client, method) pairs, in alternating rounds."""
    seconds = dict.fromkeys(targets, 0.0)
    per_round = max(1, calls_per_thread // ROUNDS)
    for _ in range(ROUNDS):
        for name, (client, method) in targets.items():
            seconds[name] += _threaded_seconds(client, method, threads, per_round)
    calls = threads * per_round * ROUNDS
    return {
        name: {"calls_per_s": round(calls / elapsed), "threads": threads, "calls": calls}
        for name, elapsed in seconds.items()
    }


# Timed in a fresh interpreter: what a program that serves and calls drivers imports.
_IMPORT_PROBE = "import time\nt = time.perf_counter()\nimport {modules}\nprint(time.perf_counter() - t)\n"
SERVE_AND_CALL_MODULES = "jumpstarter.driver, jumpstarter.client, jumpstarter.common.utils, jumpstarter.exporter"


def import_time(modules: str, runs: int) -> dict[str, Any]:
    """Median time to import `modules` in a fresh interpreter (interpreter start-up excluded)."""
    code = _IMPORT_PROBE.format(modules=modules)

    def once() -> float:
        # -I: isolated from the environment and the current directory, like an installed program;
        # it also ignores PYTHONDONTWRITEBYTECODE, so the warm-up run below leaves .pyc files behind
        # for the measured runs (otherwise every run would compile the sources again).
        result = subprocess.run(
            [sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=60, check=True
        )
        return float(result.stdout)

    once()  # so that compiling .pyc files is not measured
    samples = [once() for _ in range(runs)]
    return {"median_ms": round(statistics.median(samples) * 1000, 1), "runs": runs, "modules": modules}


def j_power_on(runs: int) -> dict[str, Any]:
    """Median wall time of ``j power on`` as a whole process, as a command inside `jmp shell` runs it.

    Three kinds of run, alternating so that the machine's load falls on all alike:

    - ``bytecode``: Python may write bytecode (the .pyc files of every module exist or are written);
    - ``installed``: Python may not (``PYTHONDONTWRITEBYTECODE=1``, as in many containers), on an
      install that compiled bytecode (pip does at install, uv with ``--compile-bytecode``): this
      workspace's modules are imported from a copy of their sources compiled beforehand;
    - ``no_bytecode``: Python may not, and this workspace's modules have no bytecode at all (an
      editable checkout in such an environment): imported from a fresh copy of their sources,
      so that each run compiles them. The libraries keep their .pyc files in both.
    """
    import compileall
    import tempfile
    from pathlib import Path

    j = str(Path(sys.executable).with_name("j"))
    root = Path(__file__).resolve().parent.parent
    with (
        tempfile.TemporaryDirectory(prefix="j-sources-") as sources,
        tempfile.TemporaryDirectory(prefix="j-installed-") as installed,
        exporter_process("--serve-power") as path,
    ):
        for src in sorted(root.glob("packages/*/src")):
            for copy in (sources, installed):
                shutil.copytree(src, copy, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
        compileall.compile_dir(installed, quiet=1)
        base = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
        base["JUMPSTARTER_HOST"] = path
        environments = {
            "bytecode": base,
            "installed": {**base, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": installed},
            "no_bytecode": {**base, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": sources},
        }

        def once(environment: dict[str, str]) -> tuple[float, float]:
            # The CPU time too: on a loaded machine it shows what wall time would be on an idle one.
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run([j, "power", "on"], env=environment, capture_output=True, timeout=60, check=True)
            elapsed = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            return elapsed, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime

        once(environments["bytecode"])  # writes the .pyc files that the first kind of run reads
        samples: dict[str, list[float]] = {name: [] for name in environments}
        cpu: dict[str, list[float]] = {name: [] for name in environments}
        for _ in range(runs):
            for name, environment in environments.items():
                elapsed, used = once(environment)
                samples[name].append(elapsed)
                cpu[name].append(used)
        if any(Path(sources).rglob("*.pyc")):
            raise RuntimeError("the runs without bytecode wrote .pyc files: the figure would be wrong")
    figure: dict[str, Any] = {"runs": runs}
    for name, values in samples.items():
        figure[f"{name}_median_ms"] = round(statistics.median(values) * 1000, 1)
        figure[f"{name}_min_ms"] = round(min(values) * 1000, 1)
        figure[f"{name}_cpu_median_ms"] = round(statistics.median(cpu[name]) * 1000, 1)
    return figure


def serve_startup(runs: int) -> dict[str, Any]:
    """Median time for serve(driver) to hand out a ready client, and to tear everything down."""
    from jumpstarter.common.utils import serve

    # One untimed cycle first: both implementations import parts of themselves (and gRPC starts
    # its polling thread) on first use, which is import time, measured separately.
    with serve(BenchDriver()) as client:
        client.call("ping")
    starts, stops = [], []
    for _ in range(runs):
        with ExitStack() as serving:
            start = time.perf_counter()
            client = serving.enter_context(serve(BenchDriver()))
            ready = time.perf_counter()
            client.call("ping")  # not timed: only proves the client was ready
            stop = time.perf_counter()
            serving.close()
            stopped = time.perf_counter()
        starts.append(ready - start)
        stops.append(stopped - stop)
    return {
        "startup_median_ms": round(statistics.median(starts) * 1000, 2),
        "teardown_median_ms": round(statistics.median(stops) * 1000, 2),
        "runs": runs,
    }


# -- the run ----------------------------------------------------------------------------


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def _give_up(name: str, timeout: float) -> None:
    """A figure hung (a blocking receive cannot be interrupted): report it and end this process.

    os._exit skips the cleanup that might hang as well; the exporter process still stops,
    since its stdin (a pipe from this process) closes.
    """
    emit({"figure": name, "error": f"timed out after {timeout:.0f} s"})
    print(f"[{IMPL.name}] {name}: timed out after {timeout:.0f} s, giving up", file=sys.stderr, flush=True)
    os._exit(3)


def measure(name: str, function: Callable[[], dict[str, Any]], timeout: float = FIGURE_TIMEOUT) -> None:
    """Run one figure and emit it; a failure is emitted as an error and does not stop the run."""
    print(f"[{IMPL.name}] {name} ...", file=sys.stderr, flush=True)
    watchdog = threading.Timer(timeout, _give_up, (name, timeout))
    watchdog.daemon = True
    watchdog.start()
    start = time.perf_counter()
    try:
        result = function()
    except Exception as error:
        traceback.print_exc()
        result = {"error": f"{type(error).__name__}: {error}"}
    finally:
        watchdog.cancel()
    print(f"[{IMPL.name}] {name}: {result} ({time.perf_counter() - start:.1f} s)", file=sys.stderr, flush=True)
    emit({"figure": name, **result})


def measure_group(
    names: dict[str, Any], function: Callable[[], dict[str, dict[str, Any]]], timeout: float = 3 * FIGURE_TIMEOUT
) -> None:
    """`measure` for figures measured together (in alternating rounds): one result per name."""
    label = ", ".join(names)
    results: dict[str, dict[str, Any]] = {}

    def run_group() -> dict[str, Any]:
        results.update(function())
        return {"figures": len(results)}

    measure(label, run_group, timeout)
    for name in names:
        record = results.get(name, {"error": "not measured: see the error of its group"})
        print(f"[{IMPL.name}] {name}: {record}", file=sys.stderr, flush=True)
        emit({"figure": name, **record})


def run(scale: float) -> None:
    def n(count: int) -> int:
        return max(1, int(count * scale))

    started = time.perf_counter()
    emit(
        {
            "implementation": IMPL.name,
            "version": IMPL.version,
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
            "scale": scale,
            # Other work on the machine skews every figure: the load shows how busy it was.
            "loadavg_start": round(os.getloadavg()[0], 2),
        }
    )

    # Start-up costs first, before this process has warmed anything up for the other figures.
    measure("import_serve_and_call", lambda: import_time(SERVE_AND_CALL_MODULES, runs=5))
    measure("import_driver", lambda: import_time("jumpstarter.driver", runs=5))
    measure("serve_startup", lambda: serve_startup(runs=10))
    if IMPL is _Ours:  # the original's j is another command line, in jumpstarter-cli
        measure("j_power_on", lambda: j_power_on(runs=max(3, n(15))))

    with in_process_client() as client:
        for method in ("ping", "aping"):
            measure(f"unary_{method}_in_process", lambda m=method: unary_latency(client, m, n(3000), warmup=n(300)))

    with ExitStack() as stack:
        path = stack.enter_context(exporter_process())
        client = stack.enter_context(IMPL.connect(path))
        # The floor is the same under either implementation: measured once, beside ours.
        bare = stack.enter_context(bare_client()) if IMPL is _Ours else None
        unary = {f"unary_{method}_cross_process": (client, method) for method in ("ping", "aping")}
        large: dict[str, tuple[Any, Any]] = {"call_1mib_cross_process": (client, _LARGE_PAYLOAD)}
        threads = {f"threads8_{method}_cross_process": (client, method) for method in ("ping", "aping")}
        if bare is not None:
            unary["bare_grpc_unary"] = (bare, "ping")
            # Bytes, which only this project's calls carry: the copies, without UTF-8 in the way.
            large["call_1mib_bytes_cross_process"] = (client, _LARGE_PAYLOAD.encode())
            large["bare_grpc_1mib"] = (bare, _LARGE_PAYLOAD)
            threads["bare_grpc_threads8"] = (bare, "ping")
        measure_group(unary, lambda: unary_latencies(unary, n(5000), warmup=n(500)))
        measure_group(large, lambda: large_calls(large, calls=n(50)))
        for method in ("count", "acount"):
            # Ours streams 200_000 items in well under a second; the original streams one item per
            # round trip, so it gets as many as it streams in about 2 s.
            if IMPL is _Ours:
                items = n(200_000)
            else:
                items = calibrated_items(client, method, seconds=2.0 * scale, maximum=200_000)
            measure(f"streaming_{method}_cross_process", lambda m=method, i=items: streaming_rate(client, m, i))
        measure("exportstream_cross_process", lambda: stream_throughput(client, chunks=n(4096), chunk=64 << 10))
        measure_group(threads, lambda: threaded_rates(threads, threads=8, calls_per_thread=n(1000)))

    emit(
        {"done": True, "seconds": round(time.perf_counter() - started, 1), "loadavg_end": round(os.getloadavg()[0], 2)}
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", action="store_true", help="internal: run the exporter process")
    parser.add_argument("--serve-bare", action="store_true", help="internal: run the bare gRPC server")
    parser.add_argument("--serve-power", action="store_true", help="internal: run an exporter with a MockPower")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply the iteration counts (e.g. 0.1 for a quick check)"
    )
    args = parser.parse_args()
    if args.serve:
        run_exporter()
    elif args.serve_bare:
        run_bare_server()
    elif args.serve_power:
        run_power_exporter()
    else:
        run(args.scale)


if __name__ == "__main__":
    main()
