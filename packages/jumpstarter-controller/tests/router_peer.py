"""One end of a router stream in a process of its own, for the tests that kill it.

    STREAM_TOKEN=... python router_peer.py ADDRESS CA_FILE

Connects, sends one frame ("hello from the peer"), prints "sent" and then holds the stream
open, receiving, until it is killed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio

from testsupport.router import router_end


async def main(address: str, ca: bytes) -> None:
    async with router_end(address, ca, os.environ["STREAM_TOKEN"]) as end:
        await end.send(b"hello from the peer")
        print("sent", flush=True)
        await end.receive_all()
        await anyio.sleep_forever()


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], Path(sys.argv[2]).read_bytes())
