"""The main job: serve mock lab drivers and drive them from a client session.

uv run python examples/demo.py
"""

from __future__ import annotations

import logging

from lab_drivers import EchoPort, MockPower

from jumpstarter.common.utils import serve
from jumpstarter.driver import Composite


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="  exporter log: %(message)s")
    lab = Composite(children={"power": MockPower(), "console": EchoPort()})
    with serve(lab) as client, client.log_stream():
        print("drivers:", ", ".join(client.children))
        client.power.on()
        for reading in client.power.read(3):
            print(f"power reading: {reading['voltage']} V, {reading['current']} A")
        client.power.off()
        with client.console.stream() as console:
            console.send(b"hello board\n")
            print("console echoed:", console.receive().decode().strip())
    print("session closed")


if __name__ == "__main__":
    main()
