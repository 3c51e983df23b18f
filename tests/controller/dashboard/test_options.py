"""`jmp controller run --dashboard/--no-dashboard` and `jmp admin dashboard-login`: bad input gets one line."""

from __future__ import annotations

import socket
from pathlib import Path

from jumpstarter.testing import Commands
from testsupport.labcontroller import JMP, LabController


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
    remote = commands.run(*JMP, "admin", "--endpoint", lab.endpoint, "--tls-ca", str(lab.state_dir / "ca.pem"),
                          "--token-file", str(lab.state_dir / "admin.token"), "dashboard-login")  # fmt: skip
    assert remote.returncode == 2 and "give --state-dir DIR" in remote.stderr
