"""A client process of tests/cli/test_large_values.py: one call with a large bytes value, then its figures.

    python large_values_client.py SOCKET OPERATION SIZE SEED

OPERATION is ``upload`` (digest(value)), ``download`` (make(size, seed)) or ``echo``
(echo(value)). The value is seeded random bytes, so that every page of it is really held.
Prints one JSON object: whether the value arrived byte-exact, the call's seconds, this
process's resident memory just before the call and its peak (VmHWM), in bytes.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time

from exporter_drivers import seeded_bytes  # (on PYTHONPATH, as for the exporter)

from jumpstarter.client import connect


def memory(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    raise LookupError(field)


def main(socket: str, operation: str, size: int, seed: int) -> None:
    with connect(socket) as client:
        large = client.children["large"]
        value = seeded_bytes(size, seed) if operation != "download" else b""
        before = memory("VmRSS")
        started = time.perf_counter()
        if operation == "upload":
            result = large.call("digest", value)
        elif operation == "download":
            result = large.call("make", size, seed)
        else:
            result = large.call("echo", value)
        seconds = time.perf_counter() - started
        peak = memory("VmHWM")  # before anything is made to compare with
        if operation == "upload":
            exact = result == hashlib.sha256(value).hexdigest()
        elif operation == "download":
            exact = result == seeded_bytes(size, seed)
        else:
            exact = result == value
    print(json.dumps({"exact": exact, "seconds": seconds, "before": before, "peak": peak}))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
