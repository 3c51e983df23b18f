"""Every ```python block of the documentation runs, and works.

A page's python blocks run in order in one fresh interpreter, so a block can use what an
earlier block of the same page defined. Each page becomes a script in a temporary
directory (also the working directory) in which the blocks keep their line numbers and
everything else is blank, so a traceback points at the page's own lines. In that script
``__name__`` is ``"__main__"``: a client class defined on a page can be named
``"__main__.MyClient"`` (or ``f"{__name__}.MyClient"``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGE_TIMEOUT_SECONDS = 60


@dataclass(frozen=True)
class Block:
    line: int  # 1-based line of the block's first line of code in the page
    code: str


def python_blocks(page: Path) -> list[Block]:
    """The fenced code blocks of `page` whose language is python, in order."""
    blocks = []
    for token in MarkdownIt("commonmark").parse(page.read_text()):
        if token.type != "fence" or token.map is None:
            continue
        words = token.info.split()
        if words and words[0] == "python":
            blocks.append(Block(line=token.map[0] + 2, code=token.content))
    return blocks


def script_for(blocks: list[Block]) -> str:
    """The blocks as one script, each block's code on the lines it has in the page."""
    lines: list[str] = []
    for block in blocks:
        lines.extend([""] * (block.line - 1 - len(lines)))
        lines.extend(block.code.splitlines())
    return "\n".join(lines) + "\n"


def pages() -> list[Path]:
    return sorted(page for page in DOCS.rglob("*.md") if "_build" not in page.parts and python_blocks(page))


def test_the_docs_have_python_examples() -> None:
    assert len(pages()) >= 5, "the documentation's python examples were not found"


@pytest.mark.parametrize("page", pages(), ids=lambda page: page.relative_to(DOCS).as_posix())
def test_page_examples_run(page: Path, tmp_path: Path) -> None:
    relative = page.relative_to(ROOT).as_posix()
    blocks = python_blocks(page)
    # A name no module has: the script's directory comes first on sys.path.
    script = tmp_path / ("docs_page_" + re.sub(r"\W", "_", page.relative_to(DOCS).with_suffix("").as_posix()) + ".py")
    script.write_text(script_for(blocks))
    environment = {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "JMP_CLIENT_CONFIG": str(tmp_path / "config" / "jumpstarter" / "client.yaml"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    for variable in ("JMP_DRIVERS_ALLOW", "JMP_DRIVERS_UNSAFE", "PYTHONPATH"):
        environment.pop(variable, None)
    try:
        result = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=PAGE_TIMEOUT_SECONDS,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{relative}: the examples did not finish within {PAGE_TIMEOUT_SECONDS} s")
    if result.returncode == 0:
        return
    output = result.stderr.replace(str(script), relative)
    # Tracebacks list the outermost frame first: the top-level statement of the block that
    # was running; the last frame in the page is where the error was raised.
    frames = re.findall(rf'File "{re.escape(relative)}", line (\d+), in (.+)', output)
    running = next((int(line) for line, function in frames if function.strip() == "<module>"), None)
    block = next((b for b in reversed(blocks) if running is not None and b.line <= running), None)
    error = output.strip().splitlines()[-1] if output.strip() else f"exit status {result.returncode}"
    where = f"the block at line {block.line}" if block else "a block"
    if frames:
        where += f" (error at line {frames[-1][0]})"
    pytest.fail(
        f"{relative}: {where} failed: {error}\n\n--- stdout ---\n{result.stdout[-4000:]}\n"
        f"--- stderr ---\n{output[-8000:]}",
        pytrace=False,
    )
