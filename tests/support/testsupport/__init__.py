"""Helpers of the workspace's tests (not shipped): fakes of hardware, peers, test drivers.

pytest finds this package through the ``pythonpath`` option of the workspace's
pyproject.toml; a process a test starts finds it through `with_support`, which puts
`SUPPORT` on its PYTHONPATH (exporter configurations name its drivers, such as
``testsupport.usb_drivers.FakeBusUsbHubPower``).

- `testsupport.pty`: `PseudoTerminal`, a real pseudo-terminal standing in for a serial device;
- `testsupport.board`: a simulated board behind a serial line (pty, TCP, RFC 2217);
- `testsupport.serial_harness`: a board, an exporter and a `j serial` command in one process;
- `testsupport.usb`, `testsupport.usb_drivers`: a fake pyusb backend (hubs, relay boards),
  and power drivers that use it from an exporter configuration;
- `testsupport.pdu`: a fake PDU command-line tool;
- `testsupport.network`, `testsupport.network_shell`: peers of the network drivers, and the
  clients the `jmp shell` scripts of their tests run;
- `testsupport.drivers`: small drivers for the core's tests;
- `testsupport.venvs`: fresh virtual environments for the plugin tests.
- `testsupport.large_values`: an exporter of large bytes values and its client process (a test and a benchmark).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

# The directory that holds this package: what a process needs on its PYTHONPATH to import it.
SUPPORT = Path(__file__).resolve().parent.parent


def with_support(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """`env` (default: this process's environment) with `SUPPORT` first on PYTHONPATH."""
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SUPPORT), env.get("PYTHONPATH", "")]))
    return env
