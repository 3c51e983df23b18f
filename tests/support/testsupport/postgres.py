"""A real PostgreSQL server for a test: the distribution's binaries, a temporary directory, a Unix socket.

`initdb` refuses to run as root, so as root the server runs as the ``postgres`` user (which
the distribution's package creates); it listens on a socket in its directory only (no TCP
port to clash), with fsync off (a test's data need not survive a power cut).

    with PostgresServer.start() as server:
        url = server.url   # postgresql://jmp@/postgres?host=DIR&port=PORT
"""

from __future__ import annotations

import glob
import os
import random
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import pytest


def _bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@dataclass
class PostgresServer:
    directory: Path
    port: int
    bin: Path
    user: str | None

    @property
    def url(self) -> str:
        return f"postgresql://jmp@/postgres?host={self.directory}&port={self.port}"

    @classmethod
    def start(cls) -> PostgresServer:
        """Start a server, or skip the test when PostgreSQL is not installed (.ci/run installs it)."""
        binaries = _bin()
        if binaries is None:
            pytest.skip("PostgreSQL is not installed (apt-get install postgresql, as .ci/run does)")
        user = "postgres" if os.getuid() == 0 else None
        directory = Path(tempfile.mkdtemp(prefix="jumpstarter-pg-"))
        directory.chmod(0o755)
        if user is not None:
            shutil.chown(directory, user)
        server = cls(directory, random.randint(20000, 60000), binaries, user)
        try:
            server._run("initdb", "-D", str(directory / "data"), "-A", "trust", "-U", "jmp", "--no-sync")
            options = f"-k {directory} -p {server.port} -c listen_addresses='' -c fsync=off"
            server._run("pg_ctl", "-D", str(directory / "data"), "-o", options, "-l", str(directory / "log"), "-w",
                        "start")  # fmt: skip
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        return server

    def _run(self, program: str, *args: str) -> None:
        result = subprocess.run([str(self.bin / program), *args], user=self.user, capture_output=True, text=True,
                                cwd=self.directory, timeout=60)  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"{program} failed: {result.stderr or result.stdout}")

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.directory / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
