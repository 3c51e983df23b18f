"""Reading YAML configuration files so that every error can point at its line.

`load_yaml` returns the data together with its YAML node tree, from which `Located.where`
finds the line and column of any value or key; `ConfigError` formats a problem as
``file:line:column: at path.to.value: problem``, followed by how to fix it, and
`Located.validate` turns a pydantic model's validation errors into such messages.

A configuration file may come from anyone, so reading one is bounded by the file's size:

* the text is parsed once, and nothing walks the data along every path an alias opens (an
  alias bomb of a few hundred bytes expands to billions of values);
* aliases may repeat at most `MAX_ALIAS_REPEATS` values, and an anchor may not contain an
  alias of itself (its value would never end);
* values nest at most `MAX_DEPTH` levels deep (deeper would exhaust the parser's recursion);
* the file is UTF-8 text (a UTF-8 byte order mark is allowed).

Each of these is a `ConfigError` that points at the place in the file.
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar, get_args

import yaml
from pydantic import BaseModel, ValidationError

from jumpstarter.config._messages import describe, short, unknown_key_fix
from jumpstarter.config.errors import ConfigError

PathPart = str | int

# Appended to a path, points at the key of its last mapping entry rather than at the value.
KEY: Final = "<key>"

# Far more than any configuration needs; far less than Python's recursion limit.
MAX_DEPTH: Final = 100
# How many values aliases may repeat in all: a configuration reuses a few sections, not millions of values.
MAX_ALIAS_REPEATS: Final = 100_000

_MERGE_TAG = "tag:yaml.org,2002:merge"
_M = TypeVar("_M", bound=BaseModel)


@dataclass(frozen=True)
class Located:
    """YAML data, with the node tree it was read from: where each value and key is in the file."""

    data: Any
    file: str
    node: yaml.Node | None = None
    # The places of aliases, by (the node holding the alias, its key node or index): the node an
    # alias stands for is the anchored one, whose own place is where the anchor is.
    aliases: Mapping[tuple[yaml.Node, Any], yaml.Mark] = field(default_factory=dict)

    def where(self, path: Sequence[PathPart]) -> str:
        """``file:line:column: at path``: the closest known place for `path`.

        A path ending with KEY points at that mapping key rather than at its value.
        """
        path = tuple(path)
        mark, _ = self._find(path)
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        shown = path[:-1] if path and path[-1] == KEY else path
        at = f": at {format_path(shown)}" if shown else ""
        return f"{self.file}:{line}:{column}{at}"

    def has(self, path: Sequence[PathPart]) -> bool:
        """Whether the file has a value (or, ending with KEY, a key) at `path`."""
        return self._find(tuple(path))[1]

    def error(self, path: Sequence[PathPart], problem: str, fix: str = "") -> ConfigError:
        return ConfigError(f"{self.where(path)}: {problem}" + (f"\n  fix: {fix}" if fix else ""))

    def unknown_key(self, path: Sequence[PathPart], key: Any, allowed: Sequence[str], where: str) -> ConfigError:
        """`key` (under `path`) is none of `allowed`: point at it, with the closest allowed key."""
        return self.error((*path, key, KEY), f"unknown key {key!r} {where}", unknown_key_fix(key, allowed))

    def validate(
        self,
        model: type[_M],
        data: Mapping[Any, Any],
        *,
        path: Sequence[PathPart] = (),
        where: str = "at the top level",
        renamed: Mapping[str, str] | None = None,
    ) -> _M:
        """`model` validated from `data` (found at `path`), or a ConfigError for the first mistake.

        Unknown keys come first, here and in nested sections, each with the closest allowed key;
        then pydantic's first error, with the field's description (or its type) as the fix.
        `renamed` maps a field's alias to the key the file used for it, so that a message names
        what the file says.
        """
        path = tuple(path)
        self._check_keys(model, data, path, where)
        try:
            return model.model_validate(data)
        except ValidationError as error:
            raise self._invalid(model, error, path, renamed or {}) from None

    def _check_keys(
        self,
        model: type[BaseModel],
        data: Mapping[Any, Any],
        path: tuple[PathPart, ...],
        where: str,
    ) -> None:
        fields = _fields(model)
        for key in data:
            if key not in fields:
                raise self.unknown_key(path, key, list(fields), where)
        for key, info in fields.items():
            section = _model_in(info.annotation)
            if section is not None and isinstance(data.get(key), dict):
                inner = (*path, key)
                self._check_keys(section, data[key], inner, f"in {format_path(inner)}")

    def _invalid(
        self, model: type[BaseModel], error: ValidationError, path: tuple[PathPart, ...], renamed: Mapping[str, str]
    ) -> ConfigError:
        problem = error.errors()[0]
        loc = tuple(problem["loc"])
        name, info = _field_at(model, loc)
        if loc and isinstance(loc[0], str) and loc[0] in renamed:
            loc = (renamed[loc[0]], *loc[1:])
        if problem["type"] == "missing":
            parent = format_path((*path, *loc[:-1]))
            return self.error(
                (*path, *loc[:-1]),
                f"{format_path((*path, *loc))} is missing",
                f"add {loc[-1]}: " + (f"under {parent}:" if parent else "at the top level"),
            )
        section = _model_in(info.annotation) if info is not None else None
        if section is not None:  # not the Python class's name: the keys the file may write there
            fix = f"{name} is a mapping of {', '.join(_fields(section))}"
        elif info is not None and info.description:
            fix = f"{name} takes {info.description}"
        else:
            fix = f"{name} takes {describe(info.annotation if info is not None else Any)}"
        # pydantic adds the members of a union to the path: keep the part that is in the file.
        loc = data_path(self._data_at(path), loc)
        message = problem["msg"].removeprefix("Value error, ")
        return self.error((*path, *loc), f"{format_path((*path, *loc))} is {short(problem['input'])}: {message}", fix)

    def _data_at(self, path: tuple[PathPart, ...]) -> Any:
        data = self.data
        for part in path:
            if not isinstance(data, (dict, list)):
                return None
            try:
                data = data[part]  # type: ignore[index]
            except (KeyError, IndexError, TypeError):
                return None
        return data

    def _find(self, path: tuple[PathPart, ...]) -> tuple[yaml.Mark | None, bool]:
        """The place of `path` in the file, or of the longest start of it that is there; and whether all of it is.

        Follows `path` down from the root node: the cost is the path's, whatever the file holds.
        """
        node = self.node
        if node is None:
            return None, False
        mark = node.start_mark
        for index, part in enumerate(path):
            if part == KEY:
                return mark, index == len(path) - 1
            found = None
            if isinstance(node, yaml.MappingNode):
                found = next(((k, v) for k, v in node.value if _key(k) == part), None)
                if found is not None and path[index + 1 : index + 2] == (KEY,):
                    return found[0].start_mark, index + 2 == len(path)
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
                found = (part, node.value[part])
            if found is None:
                return mark, False
            parent, node = node, found[1]
            mark = self.aliases.get((parent, found[0])) or node.start_mark
        return mark, True


def format_path(path: Sequence[PathPart]) -> str:
    text = ""
    for part in path:
        if part == KEY:
            continue
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def data_path(data: Any, loc: Sequence[Any]) -> tuple[PathPart, ...]:
    """The longest start of `loc` (a pydantic error location) that is a path into `data`."""
    found: list[PathPart] = []
    for part in loc:
        in_mapping = isinstance(data, dict) and part in data
        in_list = isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        if not (in_mapping or in_list):
            break
        data = data[part]
        found.append(part)
    return tuple(found)


def load_yaml(source: str | Path, *, name: str | None = None) -> Located:
    """Parse a YAML file (a path) or text (a str with `name` for messages)."""
    if isinstance(source, Path):
        file = name or str(source)
        try:
            raw = source.read_bytes()
        except OSError as error:
            raise ConfigError(f"{file}: cannot be read: {error.strerror or error}") from None
        text = _decode(raw, file)
    else:
        file, text = name or "<text>", source
    try:
        loader = _Loader(text, file)  # checks the characters at once
    except yaml.YAMLError as error:
        raise _syntax_error(error, file, text) from None
    try:
        node = loader.get_single_node()
        if node is not None:
            _check_nodes(node, file, loader.alias_marks)
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as error:
        raise _syntax_error(error, file, text) from None
    finally:
        loader.dispose()
    return Located(data=data, file=file, node=node, aliases=loader.alias_marks)


class _Loader(yaml.SafeLoader):
    """The safe loader, composing no deeper than MAX_DEPTH and remembering where each alias is."""

    def __init__(self, text: str, file: str) -> None:
        super().__init__(text)
        self.file = file
        self.depth = 0
        self.alias_marks: dict[tuple[yaml.Node, Any], yaml.Mark] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()  # type: ignore[no-untyped-call]  # PyYAML's stubs leave Parser unannotated
        # (This loader is the pure-Python one: its marks are yaml.Mark, never the C parser's.)
        if isinstance(event, yaml.AliasEvent) and parent is not None and isinstance(event.start_mark, yaml.Mark):
            self.alias_marks[(parent, index)] = event.start_mark
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = event.start_mark
                raise ConfigError(
                    f"{self.file}:{mark.line + 1}:{mark.column + 1}: values nest more than {MAX_DEPTH} levels deep"
                    "\n  fix: a configuration needs a few levels: look for brackets that are never closed, "
                    "or nesting that never ends"
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _decode(raw: bytes, file: str) -> str:
    """The text of a configuration file, which must be UTF-8."""
    for bom, encoding in (
        (codecs.BOM_UTF32_LE, "UTF-32"),
        (codecs.BOM_UTF32_BE, "UTF-32"),
        (codecs.BOM_UTF16_LE, "UTF-16"),
        (codecs.BOM_UTF16_BE, "UTF-16"),
    ):
        if raw.startswith(bom):
            raise ConfigError(
                f"{file}:1:1: the file is {encoding} text (it starts with a {encoding} byte order mark), not UTF-8"
                f"\n  fix: save it as UTF-8: iconv -f {encoding} -t UTF-8 {file} > fixed.yaml"
            )
    nul = raw.find(b"\x00")
    if nul >= 0:
        line, column = _line_column(raw, nul)
        raise ConfigError(
            f"{file}:{line}:{column}: the file holds NUL bytes: it is binary or UTF-16 text, not UTF-8"
            f"\n  fix: save it as UTF-8 text (from UTF-16: iconv -f UTF-16 -t UTF-8 {file} > fixed.yaml)"
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line, column = _line_column(raw, error.start)
        raise ConfigError(
            f"{file}:{line}:{column}: not UTF-8 text: byte 0x{raw[error.start]:02x} here is no UTF-8 character"
            f"\n  fix: save the file as UTF-8 (from Latin-1: iconv -f LATIN1 -t UTF-8 {file} > fixed.yaml)"
        ) from None


def _line_column(raw: bytes, offset: int) -> tuple[int, int]:
    """The 1-based line and column (in characters) of a byte offset into UTF-8 text."""
    start = raw.rfind(b"\n", 0, offset) + 1
    return raw.count(b"\n", 0, offset) + 1, len(raw[start:offset].decode("utf-8", "replace")) + 1


def _check_nodes(root: yaml.Node, file: str, alias_marks: Mapping[tuple[yaml.Node, Any], yaml.Mark]) -> None:
    """Refuse keys written twice, anchors that contain themselves and aliases that repeat too much.

    Visits each node once (an alias adds the size of what it repeats, known from its first
    visit), so the cost is linear in the file's size whatever its aliases expand to.
    """
    sizes: dict[yaml.Node, int] = {}  # node -> how many values it expands to (capped)
    on_path: set[yaml.Node] = set()
    repeated = 0
    cap = MAX_ALIAS_REPEATS + 1

    def here(mark: yaml.Mark) -> str:
        return f"{file}:{mark.line + 1}:{mark.column + 1}"

    def visit(node: yaml.Node, parent: yaml.Node | None, index: Any, path: tuple[Any, ...]) -> int:
        nonlocal repeated
        mark = alias_marks.get((parent, index), node.start_mark) if parent is not None else node.start_mark
        if node in on_path:
            raise ConfigError(
                f"{here(mark)}: at {format_path(path)}: this alias stands for a value that contains it, "
                "so that value would never end"
                "\n  fix: point the alias (*name) at a value outside its anchor (&name)"
            )
        if node in sizes:  # an alias of a value seen before: it repeats all of it
            repeated += sizes[node]
            if repeated > MAX_ALIAS_REPEATS:
                raise ConfigError(
                    f"{here(mark)}: at {format_path(path)}: aliases repeat more than {MAX_ALIAS_REPEATS} values "
                    "(an alias bomb?)"
                    "\n  fix: write the values out, or use fewer aliases of big values"
                )
            return sizes[node]
        on_path.add(node)
        size = 1
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, value_node in node.value:
                key = _key(key_node)
                if key_node.tag != _MERGE_TAG:
                    if key in seen:
                        # YAML loaders keep the last of two equal keys: the first would vanish silently.
                        at = format_path((*path, key)) if isinstance(key, (str, int)) else repr(key)
                        raise ConfigError(f"{here(key_node.start_mark)}: at {at}: {key!r} appears twice; keep one")
                    seen.add(key)
                size += visit(key_node, node, None, path) + visit(value_node, node, key_node, (*path, key))
        elif isinstance(node, yaml.SequenceNode):
            for position, item in enumerate(node.value):
                size += visit(item, node, position, (*path, position))
        on_path.discard(node)
        sizes[node] = min(size, cap)
        return sizes[node]

    visit(root, None, None, ())


_SCALARS = yaml.constructor.SafeConstructor()


def _key(node: yaml.Node) -> Any:
    """A mapping key as the data has it (``on:`` is True, ``1:`` is 1), so that a path into the data finds its node."""
    if isinstance(node, yaml.ScalarNode):
        construct = _SCALARS.yaml_constructors.get(node.tag)
        if construct is not None:
            try:
                return construct(_SCALARS, node)
            except (yaml.YAMLError, ValueError):
                pass
        return node.value  # a merge key (<<) has no value of its own
    return str(node.value)


# What usually causes each kind of YAML syntax error, by the start of PyYAML's description of it.
_SYNTAX_FIXES = (
    (
        "expected <block end>",
        "this line is indented differently from the lines above it: give the keys of one mapping (and the items of "
        "one list) the same indentation, and indent what belongs to a key further than the key",
    ),
    (
        "mapping values are not allowed here",
        "a ':' where no key can start: indent this line like the other keys of its mapping, "
        "or quote a value that holds ': ' (description: \"a: b\")",
    ),
    ("found character '\\t'", "YAML indents with spaces, never tabs: replace the tabs with spaces"),
    ("could not find expected ':'", "write key: value on this line (the ':' is missing), or fix its indentation"),
    ("did not find expected key", "indent this line like the other keys of its mapping, or quote the value above"),
    ("did not find expected '-'", "indent this item like the other items of its list"),
    ("expected ',' or", "close the bracket opened where the message says, or quote a value that holds , [ ] { }"),
    ("found unexpected end of stream", "close the quote opened where the message says"),
    ("found undefined alias", "define the anchor (&name) before an alias (*name) uses it"),
    ("found duplicate anchor", "give each anchor (&name) a name of its own"),
    ("but found another document", "a configuration is one YAML document: remove the second '---' and what follows"),
    ("could not determine a constructor", "remove the tag (!name): configurations hold plain YAML values"),
    ("found unhashable key", "a key is text or a number, not a list or a mapping"),
)
_DEFAULT_SYNTAX_FIX = (
    "check this line and the one above: YAML nests by indentation (spaces only), "
    "and a value that holds ': ' or ' #' needs quotes"
)


def _syntax_error(error: yaml.YAMLError, file: str, text: str) -> ConfigError:
    if isinstance(error, yaml.reader.ReaderError):  # a character YAML does not allow
        before = text[: error.position]
        line, column = before.count("\n") + 1, error.position - (before.rfind("\n") + 1) + 1
        return ConfigError(
            f"{file}:{line}:{column}: not valid YAML: the character #x{error.character:04x} is not allowed here"
            "\n  fix: remove it (a binary file, or text in another encoding?)"
        )
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else file
    problem = getattr(error, "problem", None) or str(error)
    context, context_mark = getattr(error, "context", None), getattr(error, "context_mark", None)
    if context and context_mark is not None and context_mark is not mark:
        problem += f" ({context} at line {context_mark.line + 1})"
    fix = next((fix for start, fix in _SYNTAX_FIXES if problem.startswith(start)), _DEFAULT_SYNTAX_FIX)
    return ConfigError(f"{where}: not valid YAML: {problem}\n  fix: {fix}")


def _fields(model: type[BaseModel]) -> dict[str, Any]:
    """A model's fields by the key a file writes for each (its alias)."""
    return {info.alias or name: info for name, info in model.model_fields.items()}


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model of a field annotated `Model` or `Model | None`, if any."""
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _field_at(model: type[BaseModel], loc: Sequence[Any]) -> tuple[str, Any]:
    """The key and the FieldInfo of the deepest field of `model` along `loc` (None: no field)."""
    name, info = "the value", None
    current: type[BaseModel] | None = model
    for part in loc:
        fields = _fields(current) if current is not None else {}
        if part not in fields:
            break
        name, info = str(part), fields[part]
        current = _model_in(info.annotation)
    return name, info


__all__ = ["KEY", "MAX_ALIAS_REPEATS", "MAX_DEPTH", "ConfigError", "Located", "PathPart", "format_path", "load_yaml"]
