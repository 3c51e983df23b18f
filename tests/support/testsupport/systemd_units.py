"""The systemd units that the documentation shows, for its tests: parsed, and checked by systemd itself."""

from __future__ import annotations

import configparser
import shutil
import subprocess
from pathlib import Path

import pytest

from jumpstarter.testing import BIN

__all__ = ["parse_unit", "verify_unit"]

PAGE_JMP = "/opt/jumpstarter/bin/jmp"  # where the pages install jmp


def parse_unit(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive in units
    parser.read_string(text)
    return parser


def verify_unit(text: str, path: Path) -> None:
    """`systemd-analyze verify` accepts the unit (saved as `path`, with this environment's jmp); skips without it."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # The binary must exist for systemd to accept the unit: this environment's jmp.
    path.write_text(text.replace(PAGE_JMP, str(BIN / "jmp")))
    result = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert path.name not in result.stderr, result.stderr
