"""An SSH session through a port forward to a real sshd, started here on a free port with throwaway keys."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from jumpstarter_driver_network.driver import TcpNetwork

from jumpstarter.testing import serve
from testsupport.network import free_port, sshd_path

# sshd refuses to start as root without its privilege separation directory, which the
# distribution's service normally creates at boot.
PRIVSEP_DIR = Path("/run/sshd")


@dataclass(frozen=True)
class Sshd:
    port: int
    key: Path
    user: str


def _ssh_keygen(path: Path) -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True, timeout=30)


@pytest.fixture
def sshd(short_tmp: Path) -> Iterator[Sshd]:
    executable = sshd_path()
    if executable is None or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        pytest.skip("needs OpenSSH: sshd, ssh and ssh-keygen (apt-get install openssh-server openssh-client)")
    made_privsep_dir = False
    if os.geteuid() == 0 and not PRIVSEP_DIR.exists():
        PRIVSEP_DIR.mkdir(mode=0o755)
        made_privsep_dir = True
    try:
        _ssh_keygen(short_tmp / "host_key")
        _ssh_keygen(short_tmp / "user_key")
        authorized = short_tmp / "authorized_keys"
        authorized.write_bytes((short_tmp / "user_key.pub").read_bytes())
        authorized.chmod(0o600)
        port = free_port()
        config = short_tmp / "sshd_config"
        config.write_text(
            f"Port {port}\n"
            "ListenAddress 127.0.0.1\n"
            f"HostKey {short_tmp / 'host_key'}\n"
            f"AuthorizedKeysFile {authorized}\n"
            "PidFile none\n"
            "PermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "UsePAM no\n"
            "StrictModes no\n"
            "LogLevel ERROR\n"
        )
        log = short_tmp / "sshd.log"
        with log.open("wb") as stderr:
            process = subprocess.Popen([executable, "-D", "-e", "-f", str(config)], stderr=stderr)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except ConnectionRefusedError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"sshd did not start: {log.read_text(errors='replace')}")
                    time.sleep(0.05)
            yield Sshd(port=port, key=short_tmp / "user_key", user=getpass.getuser())
        finally:
            process.terminate()
            process.wait(timeout=10)
    finally:
        if made_privsep_dir:
            PRIVSEP_DIR.rmdir()


def ssh(server: Sshd, port: int, command: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [
            "ssh",
            "-F",
            "/dev/null",  # none of this machine's ssh configuration
            "-p",
            str(port),
            "-i",
            str(server.key),
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "LogLevel=ERROR",
            f"{server.user}@127.0.0.1",
            command,
        ],
        input=stdin,
        capture_output=True,
        timeout=30,
    )


def test_ssh_session_through_a_forward(sshd: Sshd) -> None:
    with serve(TcpNetwork(host="127.0.0.1", port=sshd.port)) as client, client.forward_tcp() as (_, port):
        result = ssh(sshd, port, "echo ok")
        assert (result.returncode, result.stdout) == (0, b"ok\n"), result.stderr
        # A second session, with a megabyte each way: data, not just a handshake.
        payload = os.urandom(1 << 20)
        result = ssh(sshd, port, "cat", stdin=payload)
        assert result.returncode == 0, result.stderr
        assert result.stdout == payload
