"""Checks that apply to every test of the workspace."""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sniffio

# gRPC's asyncio support starts one poller thread per process, on first use, for good.
_PROCESS_WIDE_THREADS = ("(_poll_wrapper)",)

# pytest-xdist (`-n auto --dist loadfile`, in pyproject.toml): the whole suite runs on one worker more
# than there are cores (most tests wait on processes and sockets, so one more pays), and at most four
# (the browser and shell tests need the cores themselves, and a loaded machine stretches their waits).
_EXTRA_WORKERS = 1
_MAX_WORKERS = 4


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """`-n auto`: several workers for the whole suite, none (this process) for the paths given on the
    command line, as a developer's run of one module wants (`-n 4` asks for workers all the same)."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own setting wins
    if config.args_source != pytest.Config.ArgsSource.TESTPATHS:
        return 0
    return min(_MAX_WORKERS, len(os.sched_getaffinity(0)) + _EXTRA_WORKERS)


def pytest_configure(config: pytest.Config) -> None:
    """SIGINT as a terminal gives it, in the tests' processes and every process they start.

    A command started in the background of a shell without job control (`pytest ... &` in a script,
    an agent's or CI's shell) starts with SIGINT ignored (POSIX), Python keeps it so, and every
    child inherits it: the tests that stop a process with SIGINT, as a user's Ctrl-C, would find it
    deaf. A handler here (Python's own) is reset to the default in a child by exec, unlike an ignored
    signal, so a child starts as from a terminal.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    # asyncio only (gRPC's asyncio runs there): selenium, a dev dependency, brings trio in, and anyio
    # would otherwise run every async test on trio too.
    return "asyncio"


@pytest.fixture(scope="session", autouse=True)
async def tests_event_loop(anyio_backend: str) -> AsyncIterator[asyncio.AbstractEventLoop]:
    """One event loop for all the async tests of a process: held here, anyio's runner lives as long.

    (Without it anyio makes a loop per test.) gRPC's asyncio hands every completion of gRPC core to
    the loop of the call it belongs to, through whichever loop it serves at the time. An operation
    of a call that ended or was cancelled can still be in core when its test ends (a refused call's
    request for initial metadata, a cancelled call's status): grpc.aio gives no way to wait for it.
    A loop per test would be closed by the time core answers, and the next test's loop would fail
    with "Event loop is closed"; this one is still there and drops the answer nobody waits for.
    """
    yield asyncio.get_running_loop()


@pytest.fixture(autouse=True)
def loop_per_test_semantics(
    request: pytest.FixtureRequest, tests_event_loop: asyncio.AbstractEventLoop, no_leftover_threads: None
) -> Iterator[None]:
    """What a loop per test gave, on the tests' one loop: the tasks a test leaves running are cancelled
    (and waited for), and the loop's default executor's threads end, once the test and its fixtures
    are done (before `no_leftover_threads` looks); and a test that is not async may run an event
    loop of its own (`anyio.run`), which anyio refuses where its test runner says asyncio runs."""
    executor = ThreadPoolExecutor(thread_name_prefix="test-executor")
    tests_event_loop.set_default_executor(executor)
    before = asyncio.all_tasks(tests_event_loop)
    is_async = inspect.iscoroutinefunction(request.function)
    no_loop_here = None if is_async else sniffio.current_async_library_cvar.set(None)
    try:
        yield
    finally:
        if no_loop_here is not None:
            sniffio.current_async_library_cvar.reset(no_loop_here)
        left = asyncio.all_tasks(tests_event_loop) - before
        if left:
            tests_event_loop.run_until_complete(_cancelled(left))
        executor.shutdown(wait=True)


async def _cancelled(tasks: set[asyncio.Task[Any]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.fixture(autouse=True)
def isolated_configuration(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the user's configuration and environment out of the tests."""
    for variable in ("JMP_DRIVERS_ALLOW", "JMP_DRIVERS_UNSAFE", "JUMPSTARTER_HOST"):
        monkeypatch.delenv(variable, raising=False)
    config_home = tmp_path_factory.mktemp("config")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config_home))
    monkeypatch.setenv("JMP_CLIENT_CONFIG", str(config_home / "jumpstarter" / "client.yaml"))


_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@pytest.fixture(autouse=True)
def signals_as_found() -> Iterator[None]:
    """Fail a test that leaves a signal's handling changed: a signal ignored or blocked here stays so in
    every process the later tests start (an ignored SIGINT would not stop them)."""
    handlers = {signum: signal.getsignal(signum) for signum in _SIGNALS}
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    yield
    changed = [
        signal.Signals(signum).name for signum, handler in handlers.items() if signal.getsignal(signum) != handler
    ]
    now_blocked = signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    for signum, handler in handlers.items():
        if handler is not None:
            signal.signal(signum, handler)
    if now_blocked != blocked:
        changed.append(f"blocked {sorted(s.name for s in now_blocked)} instead of {sorted(s.name for s in blocked)}")
    assert not changed, f"the test left the handling of signals changed: {', '.join(changed)}"


@pytest.fixture(autouse=True)
def no_leftover_threads(tests_event_loop: asyncio.AbstractEventLoop) -> Iterator[None]:
    """Fail a test that leaves threads running (worker pools, event loops, stream pumps).

    anyio's worker threads of the tests' own event loop are its pool, kept for the next test."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    while True:
        leftover = [
            thread
            for thread in threading.enumerate()
            if thread not in before
            and thread.is_alive()
            and not thread.name.endswith(_PROCESS_WIDE_THREADS)
            and getattr(thread, "loop", None) is not tests_event_loop
        ]
        if not leftover:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"the test left threads running: {', '.join(thread.name for thread in leftover)}")
        time.sleep(0.02)


@pytest.fixture(scope="session")
def upstream_python() -> Path:
    """The python of the virtual environment holding the original jumpstarter 0.9.0 (created once).

    The original and this project share the import name `jumpstarter`: the original only
    ever runs in its own processes, started with this python and `upstream_env`.
    """
    from upstream_venv import UpstreamUnavailable, ensure_upstream_venv  # scripts/, on the tests' path

    try:
        return ensure_upstream_venv()
    except UpstreamUnavailable as error:
        # The only reason to skip: without the package index the original cannot be installed.
        pytest.skip(str(error))


@pytest.fixture(scope="session")
def upstream_env() -> dict[str, str]:
    """The environment of a process of the original: nothing of ours on its path, output unbuffered."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, "PYTHONUNBUFFERED": "1", "TERM": "dumb"}
