"""`jmp controller run --dashboard/--no-dashboard` and `jmp admin dashboard-login`: bad input gets one line,
and each login link minted is in the event log."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from jumpstarter.testing import Commands
from testsupport.labcontroller import JMP, LabController

# Each test runs several `jmp` commands (each a new Python process) beside a controller: a loaded CI
# host needs more than the default bound.
pytestmark = pytest.mark.timeout(180)


def test_bad_dashboard_options_get_one_line(commands: Commands, tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    bad = commands.run(*JMP, "controller", "run", "--state-dir", state, "--dashboard", "nowhere")
    assert bad.returncode == 2 and "--dashboard takes HOST:PORT" in bad.stderr and "Traceback" not in bad.stderr
    both = commands.run(*JMP, "controller", "run", "--state-dir", state, "--dashboard", "127.0.0.1:0",
                        "--no-dashboard")  # fmt: skip
    assert both.returncode == 2 and "not both" in both.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        busy = commands.run(*JMP, "controller", "run", "--state-dir", state, "--listen", "127.0.0.1:0",
                            "--dashboard", f"127.0.0.1:{port}")  # fmt: skip
    assert busy.returncode == 1, busy
    assert f"the dashboard cannot listen on 127.0.0.1:{port}" in busy.stderr and "Traceback" not in busy.stderr


def test_no_dashboard_and_the_login_link_says_so(commands: Commands, tmp_path: Path) -> None:
    lab = LabController.start(commands, tmp_path / "state", "--no-dashboard")
    assert "dashboard on" not in lab.process.output()[0]
    login = lab.admin("dashboard-login")
    assert login.returncode == 1 and "no dashboard has run" in login.stderr
    remote = commands.run(*remote_admin(lab), "dashboard-login")
    assert remote.returncode == 1 and "serves no dashboard" in remote.stderr and "Traceback" not in remote.stderr


def remote_admin(lab: LabController) -> tuple[str, ...]:
    """`jmp admin` as from another host: the endpoint, the CA and the admin credential, no state directory."""
    return (*JMP, "admin", "--endpoint", lab.endpoint, "--tls-ca", str(lab.state_dir / "ca.pem"), "--token-file",
            str(lab.state_dir / "admin.token"))  # fmt: skip


def test_dashboard_login_remote_and_local_print_a_link_to_this_dashboard(commands: Commands, tmp_path: Path) -> None:
    lab = LabController.start(commands, tmp_path / "state", "--dashboard", "127.0.0.1:0")
    url = re.search(r"dashboard on (https://\S+)", lab.process.output()[0])
    assert url is not None
    for result in (commands.run(*remote_admin(lab), "dashboard-login"), lab.admin("dashboard-login")):
        assert result.returncode == 0, result
        link = result.stdout.strip()
        assert link.startswith(f"{url.group(1)}login/once?t=") and len(link) > len(url.group(1)) + 60
    # Each link minted is in the controller's event log: who asked, how, from where.
    minted = [line for line in lab.admin("get", "events").stdout.splitlines() if "dashboard login link" in line]
    assert len(minted) == 2, minted
    assert "admin:" in minted[0] and "with --endpoint, from ipv4:127.0.0.1:" in minted[0]
    assert "admin:" in minted[1] and "on the controller's host, from ipv4:127.0.0.1:" in minted[1]
    wrong = commands.run(*JMP, "admin", "--endpoint", lab.endpoint, "--tls-ca", str(lab.state_dir / "ca.pem"),
                         "--token-file", str(tmp_path / "missing"), "dashboard-login")  # fmt: skip
    assert wrong.returncode == 1 and "missing" in wrong.stderr and "Traceback" not in wrong.stderr
