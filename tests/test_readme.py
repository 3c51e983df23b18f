"""The README's main command, run exactly as written, with the lines it suggests typing in the shell."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 120


def console_blocks(text: str) -> list[list[str]]:
    """The commands (the text after ``$ ``, without a trailing comment) of each ```console block."""
    blocks = re.findall(r"```console\n(.*?)```", text, re.DOTALL)
    return [
        [line[2:].split("  #")[0].strip() for line in block.splitlines() if line.startswith("$ ")] for block in blocks
    ]


def test_the_main_command_and_the_lines_to_try() -> None:
    text = (ROOT / "README.md").read_text()
    two_commands = text[text.index("## Two commands") : text.index("## On a real lab")]
    (setup_and_run, test_command), typed_lines = console_blocks(two_commands)
    assert test_command == "uv run pytest"
    assert setup_and_run == "uv run jmp shell --exporter-config examples/local.yaml"
    uv = shutil.which("uv")
    if uv is None:
        pytest.fail("uv is not on PATH: the README's commands need it (pip install uv)")

    # The shell reads the typed lines from its standard input, as if typed at its prompt.
    environment = {**os.environ, "SHELL": "/bin/sh"}
    process = subprocess.Popen(
        shlex.split(setup_and_run),
        cwd=ROOT,
        env=environment,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate("\n".join(typed_lines) + "\n", timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    assert process.returncode == 0, f"exit {process.returncode}\n{stdout}\n{stderr}"
    assert typed_lines[-1] == "exit"
    # j --help: the drivers of the bench, described by its configuration.
    assert re.search(r"^  power\s+The board's power", stdout, re.MULTILINE), stdout
    # j power on, then three readings.
    assert "power on\n" in stdout
    assert len(re.findall(r"^voltage=5\.0 V  current=2\.0 A", stdout, re.MULTILINE)) == 3, stdout
    # The serial port loops back what the pipe sends.
    assert "\nhello\n" in stdout
    # The script and the tests of the examples.
    assert "power: on, 5.0 V, 2.0 A\nserial: the console answered\nnet: hello\n" in stdout
    assert "2 passed" in stdout
    # The drivers' logs, in the shell.
    assert "INFO MockPower: power on" in stderr.splitlines()
    assert "Traceback" not in stderr
