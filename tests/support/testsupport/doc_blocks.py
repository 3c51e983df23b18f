"""The fenced blocks of a documentation page, for the tests that run what a page shows.

A block's info string is its language, then words that tell a test what to do with it
(``console run``, ``yaml board1.yaml``); Sphinx and GitHub show the block in its language and
ignore the rest. A console block holds commands, each on a line starting with ``$ `` (a
trailing backslash continues it on the next line; ``  # ...`` is a comment), and after each
command what it printed, where ``...`` stands for any text and a run of spaces for any run
of spaces:

    blocks = fenced(PAGE, "console")
    for step in console_steps(blocks[0]):
        result = run(step.command)
        assert step.printed_by(result.stdout + result.stderr), step
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from markdown_it import MarkdownIt

__all__ = ["Block", "Step", "console_steps", "fenced", "matches_in_order"]


@dataclass(frozen=True)
class Block:
    language: str
    words: tuple[str, ...]
    """What follows the language in the info string: the test's instructions."""
    content: str
    line: int
    """The line of the page where the block starts (1-based), for messages."""


@dataclass(frozen=True)
class Step:
    """One command of a console block and the lines the page shows it printing."""

    command: str
    output: list[str] = field(default_factory=list)

    def printed_by(self, text: str) -> bool:
        return matches_in_order(self.output, text)


def fenced(page: Path, language: str | None = None) -> list[Block]:
    """The fenced blocks of `page` in `language` (the info string's first word; None: all), in order."""
    found = []
    for token in MarkdownIt("commonmark").parse(page.read_text()):
        words = token.info.split()
        if token.type == "fence" and words and language in (None, words[0]):
            line = token.map[0] + 1 if token.map else 0
            found.append(Block(words[0], tuple(words[1:]), token.content, line))
    return found


def console_steps(block: Block) -> list[Step]:
    """The commands of a console block (comments dropped, continuations joined) with their output."""
    steps: list[Step] = []
    continued: str | None = None
    for line in block.content.splitlines():
        if continued is not None:
            continued += " " + line.strip()
        elif line.startswith("$ "):
            continued = line[2:]
        elif steps:
            if line.strip():
                steps[-1].output.append(line)
            continue
        else:
            continue
        if continued.endswith("\\"):
            continued = continued[:-1].rstrip()
            continue
        steps.append(Step(_without_comment(continued)))
        continued = None
    return steps


def _without_comment(command: str) -> str:
    return command.split("  #")[0].strip()


def matches_in_order(expected: list[str], text: str) -> bool:
    """Whether each expected line matches a line of `text`, in order (other lines may come between)."""
    lines = iter(text.splitlines())
    return all(any(_pattern(wanted).fullmatch(line.strip()) for line in lines) for wanted in expected)


def _pattern(line: str) -> re.Pattern[str]:
    parts = [r"\s+".join(re.escape(word) for word in piece.split()) for piece in line.strip().split("...")]
    return re.compile(".*".join(parts))
