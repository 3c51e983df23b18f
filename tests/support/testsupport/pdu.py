"""`Pductl`: a fake PDU command-line tool, run as a real program by CommandPower's tests."""

from __future__ import annotations

import sys
from pathlib import Path

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
