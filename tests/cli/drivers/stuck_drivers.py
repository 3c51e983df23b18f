"""Drivers of hardware that gets stuck, for the tests of stopping and of slow clients.

Imported by the exporter processes through PYTHONPATH; their client is the core's `DriverClient`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from jumpstarter.driver import Driver, export


@dataclass(kw_only=True)
class Stuck(Driver):
    """Writes its lifecycle and calls to `journal` (``reset <pid>``, ``block <pid>``, ``close <pid>``);
    `block` blocks for as long as asked, `reset` for an hour with `hang_reset`."""

    journal: str
    hang_reset: bool = False
    port: int = 1

    @classmethod
    def client(cls) -> str:
        return "jumpstarter.client.DriverClient"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.port < 65536:
            raise ValueError(f"port {self.port} is out of range (1 to 65535)")

    def _note(self, event: str) -> None:
        with open(self.journal, "a") as file:
            file.write(f"{event} {os.getpid()}\n")

    def reset(self) -> None:
        self._note("reset")
        if self.hang_reset:
            time.sleep(3600)

    def close(self) -> None:
        self._note("close")

    @export
    def block(self, seconds: float) -> str:
        self._note("block")
        time.sleep(seconds)
        return "done"

    @export
    def ping(self) -> str:
        return "pong"
