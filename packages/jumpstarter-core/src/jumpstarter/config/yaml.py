"""Reading YAML configuration files so that every error can point at its line.

`load_yaml` returns the data together with where each value and key came from, and
`ConfigError` formats a problem as ``file:line:column: at path.to.value: problem``,
followed by how to fix it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PathPart = str | int

# Appended to a path, points at the key of its last mapping entry rather than at the value.
KEY = "<key>"


class ConfigError(ValueError):
    """A configuration file is wrong; the message says where and how to fix it."""


@dataclass(frozen=True)
class Located:
    """YAML data, with the line and column (1-based) of each value by its path."""

    data: Any
    file: str
    marks: dict[tuple[PathPart, ...], tuple[int, int]] = field(default_factory=dict)

    def where(self, path: Sequence[PathPart]) -> str:
        """``file:line:column: at path``: the closest known place for `path`.

        A path ending with KEY points at that mapping key rather than at its value.
        """
        path = tuple(path)
        for length in range(len(path), -1, -1):
            mark = self.marks.get(path[:length])
            if mark is not None:
                break
        else:
            mark = (1, 1)
        shown = path[:-1] if path and path[-1] == KEY else path
        at = f": at {format_path(shown)}" if shown else ""
        return f"{self.file}:{mark[0]}:{mark[1]}{at}"

    def error(self, path: Sequence[PathPart], problem: str, fix: str = "") -> ConfigError:
        return ConfigError(f"{self.where(path)}: {problem}" + (f"\n  fix: {fix}" if fix else ""))


def format_path(path: Sequence[PathPart]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def load_yaml(source: str | Path, *, name: str | None = None) -> Located:
    """Parse a YAML file (a path) or text (a str with `name` for messages)."""
    if isinstance(source, Path):
        file = name or str(source)
        try:
            text = source.read_text()
        except OSError as error:
            raise ConfigError(f"{file}: cannot be read: {error.strerror or error}") from None
    else:
        file, text = name or "<text>", source
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else file
        problem = getattr(error, "problem", None) or str(error)
        raise ConfigError(f"{where}: not valid YAML: {problem}") from None
    marks: dict[tuple[PathPart, ...], tuple[int, int]] = {}
    if node is not None:
        _record_marks(node, (), marks, file)
    return Located(data=data, file=file, marks=marks)


def _record_marks(
    node: yaml.Node, path: tuple[PathPart, ...], marks: dict[tuple[PathPart, ...], tuple[int, int]], file: str
) -> None:
    marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = _key(key_node)
            if key in seen:
                # YAML loaders keep the last of two equal keys: the first would vanish silently.
                line, column = key_node.start_mark.line + 1, key_node.start_mark.column + 1
                at = format_path((*path, key)) if isinstance(key, (str, int)) else repr(key)
                raise ConfigError(f"{file}:{line}:{column}: at {at}: {key!r} appears twice; keep one")
            seen.add(key)
            _record_marks(value_node, (*path, key), marks, file)
            # A key's own position: where to point for an unknown or misspelled key.
            marks[(*path, key, KEY)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _record_marks(item, (*path, index), marks, file)


def _key(node: yaml.Node) -> Any:
    """A mapping key as the data has it (``on:`` is True, ``1:`` is 1), so that a path into the data finds its mark."""
    if isinstance(node, yaml.ScalarNode):
        try:
            return yaml.constructor.SafeConstructor().construct_object(node)
        except yaml.YAMLError:  # a merge key (<<) has no value of its own
            return node.value
    return str(node.value)
