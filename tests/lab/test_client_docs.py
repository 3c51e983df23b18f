"""docs/lab/client.md's commands run as written against a real lab (controller, exporter process)."""

from __future__ import annotations

from pathlib import Path

import pytest

from testsupport.doc_blocks import console_steps, fenced
from testsupport.lab_exporter import LabBench

PAGE = Path(__file__).resolve().parents[2] / "docs" / "lab" / "client.md"

pytestmark = pytest.mark.timeout(240)


def console_blocks() -> list[list[str]]:
    """Each console block's commands."""
    return [[step.command for step in console_steps(block)] for block in fenced(PAGE, "console")]


def test_the_several_steps_block_runs_as_written(bench: LabBench) -> None:
    (steps,) = [block for block in console_blocks() if any("jmp create lease" in line for line in block)]
    tests = bench.lab.commands.directory / "tests"  # what its `pytest tests/` runs
    tests.mkdir()
    (tests / "test_board.py").write_text("def test_power(jumpstarter_client):\n    jumpstarter_client.power.off()\n")
    script = "set -e\n" + "\n".join(steps) + "\necho done\n"
    # Five jmp commands: on two loaded cores they take longer than one command's default bound.
    result = bench.lab.commands.run("sh", "-c", script, timeout=120, JMP_CLIENT_CONFIG=str(bench.alice))
    assert result.returncode == 0, result
    assert result.stdout.splitlines()[-1] == "done"
    assert "released" in result.stdout


def test_the_listing_block_runs_and_shows_the_columns(bench: LabBench) -> None:
    (listing,) = [block for block in console_blocks() if any("jmp get leases" in line for line in block)]
    assert bench.jmp("create", "lease", "-l", "board=rpi4", "--duration", "1h").returncode == 0
    for command in listing:
        result = bench.lab.commands.run("sh", "-c", command, JMP_CLIENT_CONFIG=str(bench.alice))
        assert result.returncode == 0, result
        header = result.stdout.splitlines()[0]
        assert header.split()[0] == "NAME", result


def test_the_first_shell_command_runs(bench: LabBench) -> None:
    first = console_blocks()[0][0].replace("alice.yaml", str(bench.alice))
    result = bench.lab.commands.run("sh", "-c", first)
    assert result.returncode == 0, result
