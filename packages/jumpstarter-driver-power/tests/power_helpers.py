"""What the power drivers' tests share: a real pseudo-terminal and a fake PDU tool (imported by name)."""

from __future__ import annotations

import os
import select
import sys
import time
from pathlib import Path


class PseudoTerminal:
    """A real pseudo-terminal: drivers open `path`; the test reads what they wrote from the other end."""

    def __init__(self) -> None:
        self.controller, self.device = os.openpty()
        self.path = os.ttyname(self.device)

    def read(self, count: int, timeout: float = 5.0) -> bytes:
        """Exactly `count` bytes written to the terminal, or fail after `timeout` seconds."""
        data = b""
        deadline = time.monotonic() + timeout
        while len(data) < count:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self.controller], [], [], max(remaining, 0))
            if not ready:
                raise AssertionError(f"expected {count} bytes on {self.path}, got {data.hex(' ') or 'nothing'}")
            data += os.read(self.controller, count - len(data))
        return data

    def pending(self, wait: float = 0.1) -> bytes:
        """What arrives within `wait` seconds: checks that nothing more was written."""
        ready, _, _ = select.select([self.controller], [], [], wait)
        return os.read(self.controller, 4096) if ready else b""

    def close(self) -> None:
        os.close(self.controller)
        os.close(self.device)


# A stand-in for a PDU's command-line tool, run as a real program by CommandPower's tests and
# by the README's example. It keeps the outlets' states in a file beside itself and logs its
# arguments, one call per line.
PDUCTL = r"""#!{python}
import json, os, subprocess, sys, time
from pathlib import Path

here = Path(__file__).resolve().parent
states = here / "outlets.json"
with (here / "calls.log").open("a") as log:
    log.write(" ".join(sys.argv[1:]) + "\n")
args = sys.argv[1:]
if args[:1] == ["hang"]:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    (here / "child.pid").write_text(str(child.pid))
    time.sleep(60)
if os.environ.get("PDU_LOCKED"):
    print("pductl: outlet " + args[1] + " is locked", file=sys.stderr)
    sys.exit(3)
outlet, action = args[1], args[2]
power = json.loads(states.read_text()) if states.exists() else {{}}
if action in ("on", "off"):
    power[outlet] = action
    states.write_text(json.dumps(power))
    print("outlet " + outlet + " " + action)
elif action == "status":
    print("Outlet " + outlet + " power is " + power.get(outlet, "off"))
elif action == "measure":
    on = power.get(outlet) == "on"
    print("voltage: 230.5 V\ncurrent: " + ("0.25" if on else "0") + " A")
else:
    sys.exit("pductl: unknown action " + action)
"""


class Pductl:
    """The fake PDU tool: `program` is its path, `calls()` the argument lines it was run with."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.program = directory / "pductl"
        self.program.write_text(PDUCTL.format(python=sys.executable))
        self.program.chmod(0o755)

    def calls(self) -> list[str]:
        log = self.directory / "calls.log"
        return log.read_text().splitlines() if log.exists() else []

    def child_pid(self) -> int:
        return int((self.directory / "child.pid").read_text())
