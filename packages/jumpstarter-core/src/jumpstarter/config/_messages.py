"""Words shared by the messages of every configuration file: values shown short, types described,
the closest of some allowed names."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any, Literal, get_args, get_origin


def close_match(word: str, candidates: Sequence[str]) -> str | None:
    """The candidate closest to `word` (case aside), if any is close enough to be a likely typo."""
    by_lower = {candidate.lower(): candidate for candidate in candidates}
    matches = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[matches[0]] if matches else None


def describe(annotation: Any) -> str:
    """A type annotation as a user reads it: ``int``, ``one of 'a', 'b'``, ``dict[str, str]``."""
    if annotation is Any:
        return "any value"
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(repr(choice) for choice in get_args(annotation))
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def kind_of(value: Any) -> str:
    """What a value is, for "X is <kind>, not ...": ``empty``, ``a list``, ``a mapping`` or the value itself."""
    if value is None:
        return "empty"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return short(value)


def short(value: Any, limit: int = 60) -> str:
    """`repr(value)`, cut to `limit` characters: a message stays one line whatever the file holds."""
    if isinstance(value, (dict, list)) and len(value) > 20:  # no repr of a big value just to cut it
        return f"a {'mapping' if isinstance(value, dict) else 'list'} of {len(value)} values"
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def quote_it(value: Any) -> str:
    """The fix for a value that YAML read as something other than text."""
    if isinstance(value, bool):  # the data holds True, not the `on` or `yes` of the file
        return 'YAML reads an unquoted on, off, yes or no as true or false: quote it ("on": ...)'
    return f'quote it: "{value}"'


def unknown_key_fix(key: Any, allowed: Sequence[str]) -> str:
    """The fix for an unknown key: why YAML may have changed it, the closest allowed key, and all of them."""
    fix = f"YAML reads an unquoted yes, no, on or off as {key}: quote the key; " if isinstance(key, bool) else ""
    close = close_match(str(key), allowed)
    fix += f"did you mean {close!r}? " if close else ""
    fix += f"the keys allowed: {', '.join(allowed)}" if allowed else "no keys are allowed"
    return fix
