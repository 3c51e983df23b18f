"""A virtual environment with the original jumpstarter 0.9.0, used as a test and benchmark peer.

The original and this project share the import name `jumpstarter`, so the original lives
in its own environment (by default `.cache/upstream-0.9.0` at the repository root) and is
only ever run as a separate process. Creating it needs the package index; when the index
cannot be reached, `UpstreamUnavailable` says so and callers skip.

    uv run python scripts/upstream_venv.py     # create it (or check it), print its python
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LOCATION = ROOT / ".cache" / "upstream-0.9.0"
PACKAGES = [
    "jumpstarter==0.9.0",
    "jumpstarter-protocol==0.9.0",
    "jumpstarter-driver-composite==0.9.0",
    "jumpstarter-driver-power==0.9.0",
    "jumpstarter-driver-network==0.9.0",
    # Its command line (jmp, jmp run, j): the peers of the lab controller's interop tests.
    "jumpstarter-cli==0.9.0",
]


class UpstreamUnavailable(RuntimeError):
    """The original jumpstarter could not be installed because the package index is unreachable."""


def _uv() -> str | None:
    return os.environ.get("UV") or shutil.which("uv")


def index_reachable() -> bool:
    """Whether the package index (uv's or pip's, as configured) answers at all."""
    index = next(
        (os.environ[name] for name in ("UV_DEFAULT_INDEX", "UV_INDEX_URL", "PIP_INDEX_URL") if os.environ.get(name)),
        "https://pypi.org/simple",
    )
    url = urlparse(index)
    try:
        with socket.create_connection((url.hostname or "pypi.org", url.port or 443), timeout=10):
            return True
    except OSError:
        return False


def _python(location: Path) -> Path:
    return location / "bin" / "python"


def _is_ready(location: Path, check: str) -> bool:
    python = _python(location)
    if not python.exists():
        return False
    return subprocess.run([str(python), "-c", check], capture_output=True).returncode == 0


@contextmanager
def _locked(location: Path) -> Iterator[None]:
    """Hold an exclusive lock on a file beside `location` (waiting for it): the test workers run in
    parallel (pytest-xdist), and two of them must never build or remove the same environment at once."""
    location.parent.mkdir(parents=True, exist_ok=True)
    with open(location.parent / f".{location.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


def ensure_venv(location: Path, packages: list[str], check: str, what: str) -> Path:
    """Create (once) an environment at `location` with `packages`, ready when `check` (python code)
    runs there without error; return its python. `what` names it in errors. Safe to call from
    several processes at once: one builds, the others wait for it and use what it built."""
    if _is_ready(location, check):
        return _python(location)
    with _locked(location):
        if _is_ready(location, check):  # another process built it while this one waited
            return _python(location)
        return _create(location, packages, what)


def _create(location: Path, packages: list[str], what: str) -> Path:
    uv = _uv()
    shutil.rmtree(location, ignore_errors=True)
    if uv:
        commands = [
            [uv, "venv", "--quiet", "--python", sys.executable, str(location)],
            [uv, "pip", "install", "--quiet", "--python", str(_python(location)), *packages],
        ]
    else:
        commands = [
            [sys.executable, "-m", "venv", str(location)],
            [str(_python(location)), "-m", "pip", "install", "--quiet", *packages],
        ]
    for command in commands:
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            shutil.rmtree(location, ignore_errors=True)
            if not index_reachable():
                raise UpstreamUnavailable(f"the package index cannot be reached to install {what}")
            raise RuntimeError(f"installing {what} failed:\n{result.stderr}")
    return _python(location)


def ensure_upstream_venv(location: Path = DEFAULT_LOCATION) -> Path:
    """Create (once) the environment with the original 0.9.0 packages; return its python."""
    wanted = "('jumpstarter', 'jumpstarter-cli')"
    check = f"import importlib.metadata as m; assert {{m.version(p) for p in {wanted}}} == {{'0.9.0'}}"
    return ensure_venv(location, PACKAGES, check, "jumpstarter==0.9.0")


if __name__ == "__main__":
    print(ensure_upstream_venv())
