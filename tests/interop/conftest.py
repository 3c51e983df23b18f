"""Fixtures of the interoperability suite: the original jumpstarter 0.9.0 as a peer process.

The original shares the import name `jumpstarter` with this project, so it only ever runs in
its own virtual environment, as a separate process executing one of the `peer_*.py` scripts
beside this file. Scripts take a JSON request on stdin and answer with one JSON line on
stdout; a server script first prints one JSON line describing what it serves, then serves
until its stdin is closed.

Our side (a `Session` serving drivers) runs in the test process, on an event loop in a
background thread, so that tests can look at the very driver objects the peer called.
"""

from __future__ import annotations

import json
import selectors
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pytest

from jumpstarter.driver import Driver
from jumpstarter.exporter import SingleSession
from jumpstarter.testing import serve_socket

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

# Peers exchange JSON lines; a peer that says nothing for this long is considered hung.
DEFAULT_TIMEOUT = 60.0


class PeerFailed(AssertionError):
    """A peer script exited badly or did not answer in time; carries what it printed."""


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class Upstream:
    """Runs the peer scripts with the original's python."""

    python: Path
    env: dict[str, str]

    def run(
        self, script: str, request: Any, *, env: dict[str, str] | None = None, timeout: float = DEFAULT_TIMEOUT
    ) -> Any:
        """Run `script` to completion with `request` (JSON) on stdin; return its JSON answer."""
        process = subprocess.Popen(
            [str(self.python), str(HERE / script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**self.env, **(env or {})},
            cwd=HERE,
        )
        try:
            stdout, stderr = process.communicate(json.dumps(request), timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
            raise PeerFailed(f"{script} did not finish within {timeout} s\n{_tail(stderr)}") from None
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        if process.returncode != 0 or not stdout.strip():
            raise PeerFailed(f"{script} exited with {process.returncode}\n{_tail(stderr)}")
        return json.loads(stdout.strip().splitlines()[-1])

    @contextmanager
    def serve(self, script: str, *, timeout: float = DEFAULT_TIMEOUT) -> Iterator[dict[str, Any]]:
        """Start a server script; yield the JSON line it prints once it serves; stop it on exit."""
        # stderr goes to a file: a pipe nobody reads would block a chatty server.
        with tempfile.TemporaryFile("w+") as stderr:
            process = subprocess.Popen(
                [str(self.python), str(HERE / script)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                env=self.env,
                cwd=HERE,
            )
            try:
                yield self._first_line(process, script, stderr, timeout)
            finally:
                try:
                    # Closing stdin asks the server to stop; it is killed if it does not.
                    if process.stdin is not None:
                        process.stdin.close()
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                finally:
                    if process.stdout is not None:
                        process.stdout.close()

    @staticmethod
    def _first_line(process: subprocess.Popen[str], script: str, stderr: IO[str], timeout: float) -> dict[str, Any]:
        assert process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            ready = selector.select(timeout)
        line = process.stdout.readline() if ready else ""
        if not line:
            if process.poll() is None:
                process.kill()
                process.wait()
            stderr.seek(0)
            raise PeerFailed(f"{script} did not start (exit code {process.returncode})\n{_tail(stderr.read())}")
        return json.loads(line)


@pytest.fixture(scope="session")
def upstream(upstream_python: Path, upstream_env: dict[str, str]) -> Upstream:
    return Upstream(upstream_python, upstream_env)


@contextmanager
def serve_ours(root: Driver) -> Iterator[tuple[SingleSession, str]]:
    """Serve `root` in one session on a Unix socket, from a background event loop; yield (provider, path).

    The provider's `status` is what GetStatus reports."""
    provider = SingleSession(root)
    with serve_socket(provider) as path:
        yield provider, path


@pytest.fixture(scope="session")
def our_exporter() -> Callable[[Driver], AbstractContextManager[tuple[SingleSession, str]]]:
    """`serve_ours`, for modules that serve their own driver trees."""
    return serve_ours
