"""Keeping glibc's allocator from returning megabyte buffers to the system after every call.

A call that carries a megabyte allocates and frees several buffers of that size on each side
(the value, its encoding, gRPC's copies). By default glibc serves such buffers with mmap once
they pass its *dynamic* threshold, and gives the top of its heap back to the system as soon
as more than twice that is free: every call then maps, faults in and unmaps fresh pages, which
takes longer than copying the bytes (a 1 MiB echo: about 2.5x slower, measured with
`benchmarks/run.py`).

`tune_allocator` fixes both thresholds once per process, the equivalent of
``GLIBC_TUNABLES=glibc.malloc.mmap_threshold=...:glibc.malloc.trim_threshold=...``:
buffers up to `MMAP_THRESHOLD` come from the heap and are reused, larger ones are still
mapped and unmapped (a 100 MiB value is returned to the system when freed), and up to
`TRIM_THRESHOLD` of free heap is kept for the next call. It does nothing on other C
libraries, or when the environment already sets these parameters (the user's choice wins).
"""

from __future__ import annotations

import os
import threading

__all__ = ["LARGE_MESSAGE_BYTES", "MMAP_THRESHOLD", "TRIM_THRESHOLD", "tune_allocator"]

MMAP_THRESHOLD = 4 << 20
"""Buffers up to this size come from the heap, where they are reused."""
TRIM_THRESHOLD = 32 << 20
"""Free heap kept for reuse rather than returned to the system."""
LARGE_MESSAGE_BYTES = 256 << 10
"""A client tunes the allocator when it first sends or receives a message this large."""

# mallopt() parameters, from glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

_lock = threading.Lock()
_done = False


def tune_allocator() -> bool:
    """Fix glibc's mmap and trim thresholds for this process (once); whether they were set."""
    global _done
    if _done:
        return False
    with _lock:
        if _done:
            return False
        _done = True
        if not _glibc() or _set_by_environment():
            return False
        import ctypes  # only here: a few milliseconds of import that most commands never need

        try:
            mallopt = ctypes.CDLL(None).mallopt
        except (OSError, AttributeError):
            return False
        mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
        mallopt.restype = ctypes.c_int
        return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def _glibc() -> bool:
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError, AttributeError):  # no such name here: not glibc
        return False


def _set_by_environment() -> bool:
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    return (
        "glibc.malloc.mmap_threshold" in tunables
        or "glibc.malloc.trim_threshold" in tunables
        or "MALLOC_MMAP_THRESHOLD_" in os.environ
        or "MALLOC_TRIM_THRESHOLD_" in os.environ
    )
