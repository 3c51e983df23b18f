"""The entries of ``export``: their shape, and the refs between them (no driver is needed for these checks)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from jumpstarter.config._messages import close_match, kind_of, quote_it, short
from jumpstarter.config.yaml import KEY, ConfigError, Located, PathPart

ENTRY_KEYS = ("type", "description", "methods_description", "config", "children", "ref")
TYPE_FIX = (
    "type names a driver class: an installed driver's name (`jmp driver list`), "
    "distribution:Name, or an import path such as package.module.Class"
)
_REF_FIX = "point ref: at an entry that is a driver (one with type: or children:)"


@dataclass(eq=False)  # entries are told apart by identity: two may be written the same
class Entry:
    """One checked entry of export; a ref's `target` is set once every entry is known."""

    name: str  # dotted, from the top of export: "dut.console"
    path: tuple[PathPart, ...]  # in the file: ("export", "dut", "children", "console")
    type: str | None = None
    description: str | None = None
    methods_description: dict[str, str] | None = None
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    children: dict[str, Entry] | None = None  # None: the entry has no children: key
    ref: str | None = None
    target: Entry | None = None  # for a ref: the entry, not itself a ref, that it leads to


def check_export(located: Located, export: dict[Any, Any]) -> dict[str, Entry]:
    """The entries of `export` (found at ``export`` in `located`), their refs resolved and checked."""
    entries = _parse_entries(located, ("export",), "", export)
    _resolve_refs(located, entries)
    _check_finite(located, entries)
    return entries


def walk(entries: Iterable[Entry]) -> Iterator[Entry]:
    """Every entry as written, in the file's order (not following refs)."""
    for entry in entries:
        yield entry
        yield from walk((entry.children or {}).values())


def _parse_entries(located: Located, path: tuple[PathPart, ...], prefix: str, data: dict[Any, Any]) -> dict[str, Entry]:
    entries = {}
    for name, value in data.items():
        if not isinstance(name, str):
            raise located.error((*path, name, KEY), f"the entry name {name!r} is not text", quote_it(name))
        entries[name] = _parse_entry(located, (*path, name), f"{prefix}{name}", value)
    return entries


def _parse_entry(located: Located, path: tuple[PathPart, ...], name: str, data: Any) -> Entry:
    if not isinstance(data, dict):
        raise located.error(
            (*path, KEY) if data is None else path,  # nothing written: point at the name
            f"entry {name!r} is {kind_of(data)}, not a mapping",
            f"write {path[-1]}: {{type: <driver>, config: {{...}}}}, {{children: {{...}}}} or {{ref: <entry>}}",
        )
    for key in data:
        if key not in ENTRY_KEYS:
            raise located.unknown_key(path, key, ENTRY_KEYS, f"in entry {name!r}")
    if "ref" in data:
        return _parse_ref(located, path, name, data)
    if "type" in data and not (isinstance(data["type"], str) and data["type"].strip()):
        raise located.error((*path, "type"), f"the type of entry {name!r} is {short(data['type'])}", TYPE_FIX)
    if "type" not in data:
        if "config" in data:
            raise located.error(
                (*path, "config", KEY),
                f"entry {name!r} has config: but no type: to say which driver it configures",
                "add type: <driver>, or remove config:",
            )
        if "children" not in data:
            raise located.error(
                (*path, KEY),
                f"entry {name!r} has no type:, children: or ref:",
                "add type: <driver> for a driver, children: for a group of entries, "
                "or ref: <entry> for another name of an existing entry",
            )
    config = data.get("config") or {}
    if not isinstance(config, dict):
        raise located.error((*path, "config"), f"config is {kind_of(config)}, not a mapping", "write  name: value")
    for key in config:
        if not isinstance(key, str):
            raise located.error((*path, "config", key, KEY), f"the config key {key!r} is not text", quote_it(key))
    children = data.get("children")
    if children is not None and not isinstance(children, dict):
        raise located.error(
            (*path, "children"),
            f"children is {kind_of(children)}, not a mapping of entry names to entries",
            "write children:, then one entry per line below it",
        )
    return Entry(
        name=name,
        path=path,
        type=data.get("type"),
        description=_optional_text(located, (*path, "description"), data.get("description")),
        methods_description=_texts(located, (*path, "methods_description"), data.get("methods_description")),
        config=config,
        # `children:` with nothing under it is no children, but still a Composite when there is no type.
        children=_parse_entries(located, (*path, "children"), f"{name}.", children or {})
        if "children" in data
        else None,
    )


def _parse_ref(located: Located, path: tuple[PathPart, ...], name: str, data: dict[str, Any]) -> Entry:
    other = next((key for key in data if key != "ref"), None)
    if other is not None:
        raise located.error(
            (*path, other, KEY),
            f"entry {name!r} has both ref: and {other}:",
            f"an alias is the driver at its ref, with that driver's own type, config, children and description: "
            f"remove {other}:, or remove ref: to declare a driver of its own",
        )
    ref = data["ref"]
    if not isinstance(ref, str) or not all(ref.split(".")):
        raise located.error(
            (*path, "ref"),
            f"ref {short(ref)} is not a dotted path of entry names",
            "write ref: power for a top-level entry, ref: dut.console for one under children:",
        )
    return Entry(name=name, path=path, ref=ref)


def _optional_text(located: Located, path: tuple[PathPart, ...], value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise located.error(path, f"{path[-1]} is {short(value)}, not text", quote_it(value))
    return value


def _texts(located: Located, path: tuple[PathPart, ...], value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise located.error(path, f"{path[-1]} is {kind_of(value)}, not a mapping", "write  method: help text")
    for key, text in value.items():
        if not isinstance(key, str):
            raise located.error((*path, key, KEY), f"the method name {key!r} is not text", quote_it(key))
        _optional_text(located, (*path, key), text)
    return value


def _resolve_refs(located: Located, roots: dict[str, Entry]) -> None:
    """Set the target of every ref: the entry, not itself a ref, that its path leads to."""

    def target(entry: Entry, chain: tuple[Entry, ...]) -> Entry:
        if entry.ref is None:
            return entry
        if entry.target is not None:
            return entry.target
        if entry in chain:  # `chain` holds the refs being resolved, each waiting on the next
            loop = chain[chain.index(entry) :]
            first = loop[0]
            if len(loop) == 1:
                raise located.error(
                    (*first.path, "ref"), f"{first.name!r} refers to itself (ref: {first.ref})", _REF_FIX
                )
            circle = " -> ".join(e.name for e in (*loop, first))
            raise located.error((*first.path, "ref"), f"the refs go round in a circle: {circle}", _REF_FIX)
        level: dict[str, Entry] = roots
        walked: list[str] = []
        for part in entry.ref.split("."):
            child = level.get(part)
            if child is None:
                raise _nowhere(located, entry, part, walked, level)
            found = target(child, (*chain, entry))  # a path may go through another alias
            level = found.children or {}
            walked.append(part)
        entry.target = found
        return found

    for entry in walk(roots.values()):
        target(entry, ())


def _nowhere(located: Located, entry: Entry, part: str, walked: list[str], level: dict[str, Entry]) -> ConfigError:
    where = f"under {'.'.join(walked)!r}" if walked else "at the top of export"
    close = close_match(part, list(level))
    fix = f"did you mean {close!r}? " if close else ""
    fix += f"the entries there: {', '.join(level)}" if level else f"{'.'.join(walked)!r} has no children"
    return located.error(
        (*entry.path, "ref"), f"ref {entry.ref!r} of {entry.name!r} leads nowhere: no {part!r} {where}", fix
    )


def _check_finite(located: Located, roots: dict[str, Entry]) -> None:
    """Reject aliases that make an entry contain itself: its driver tree would never end."""
    on_path: list[tuple[Entry, Entry]] = []  # (entry as written, the entry it stands for), root first
    done: set[Entry] = set()

    def visit(written: Entry) -> None:
        real = written.target or written
        for index, (_, seen) in enumerate(on_path):
            if seen is real:
                raise _loop_error(located, [entry for entry, _ in on_path[index:]] + [written])
        if real in done:
            return
        on_path.append((written, real))
        for child in (real.children or {}).values():
            visit(child)
        on_path.pop()
        done.add(real)

    for entry in roots.values():
        visit(entry)


def _loop_error(located: Located, loop: list[Entry]) -> ConfigError:
    """`loop`: entries as written, each inside the previous one's driver, the last standing for the first's."""
    real = loop[0].target or loop[0]
    refs = [entry for entry in loop[1:] if entry.ref is not None]  # a loop needs a ref: plain children nest
    blamed = refs[-1]
    if len(refs) == 1 and blamed.name.startswith(f"{real.name}."):
        return located.error(
            (*blamed.path, "ref"),
            f"ref {blamed.ref!r} of {blamed.name!r} names {real.name!r}, which contains {blamed.name!r} itself",
            f"an alias cannot stand for its own ancestor (the tree would never end): point it outside {real.name!r}",
        )
    steps = " -> ".join(entry.name + (f" (ref {entry.ref})" if entry.ref else "") for entry in loop[1:])
    return located.error(
        (*blamed.path, "ref"),
        f"the refs make {real.name!r} contain itself: {real.name} -> {steps}",
        "an alias cannot lead back to one of its ancestors (the tree would never end): point one of these elsewhere",
    )
