"""Checks that apply to every test of the workspace."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

# gRPC's asyncio support starts one poller thread per process, on first use, for good.
_PROCESS_WIDE_THREADS = ("(_poll_wrapper)",)


@pytest.fixture(autouse=True)
def no_leftover_threads() -> Iterator[None]:
    """Fail a test that leaves threads running (worker pools, event loops, stream pumps)."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5
    while True:
        leftover = [
            thread
            for thread in threading.enumerate()
            if thread not in before and thread.is_alive() and not thread.name.endswith(_PROCESS_WIDE_THREADS)
        ]
        if not leftover:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"the test left threads running: {', '.join(thread.name for thread in leftover)}")
        time.sleep(0.02)
