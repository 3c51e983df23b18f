"""The examples of the reference pages run as written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent / "seed_examples"


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.py")), ids=lambda path: path.stem)
def test_seed_example_runs_as_written(example: Path) -> None:
    # A fresh interpreter: the examples register a fake "example" module in sys.modules.
    result = subprocess.run([sys.executable, str(example)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    if example.stem == "driver_classes_and_architecture":
        assert result.stdout == "Response for test\n"
