"""One end of a router stream, driven by the ORIGINAL jumpstarter 0.9.0's `connect_router_stream`.

Run with the original's python. Reads {"endpoint", "token", "ca", "send"} as JSON on stdin (ca:
base64 PEM, as in the original's configs' tls.ca; send: how many bytes to send); connects to the
router as the original's client and exporter do, sends `send` bytes (os.urandom) and ends its
direction, receives until the other end's, and prints {"sent": sha256, "received": sha256,
"received_bytes": n}. An error is printed as {"error": ...}.

The original closes its channel as soon as both directions ended, which cancels its call: what
it sent and gRPC had not yet put on the wire is lost. The test therefore answers only after it
received all this peer sent, as the original's own inner connections do in practice.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

import anyio
from peer_io import describe_error, send, take_stdout

from jumpstarter.common.streams import connect_router_stream
from jumpstarter.config.tls import TLSConfigV1Alpha1
from jumpstarter.streams.common import create_memory_stream


async def exchange(request: dict[str, object]) -> dict[str, object]:
    mine, theirs = create_memory_stream()
    data = os.urandom(int(request["send"]))  # type: ignore[call-overload]
    received = hashlib.sha256()
    count = 0
    tls = TLSConfigV1Alpha1(ca=request["ca"])
    async with connect_router_stream(request["endpoint"], request["token"], theirs, tls, {}), mine:
        for start in range(0, len(data), 65536):
            await mine.send(data[start : start + 65536])
        await mine.send_eof()
        async for chunk in mine:
            received.update(chunk)
            count += len(chunk)
    return {"sent": hashlib.sha256(data).hexdigest(), "received": received.hexdigest(), "received_bytes": count}


def main() -> None:
    answer = take_stdout()
    request = json.loads(sys.stdin.read())
    try:
        send(answer, anyio.run(exchange, request))
    except BaseException as error:  # reported to the test, which says what failed
        send(answer, {"error": describe_error(error)})


if __name__ == "__main__":
    main()
