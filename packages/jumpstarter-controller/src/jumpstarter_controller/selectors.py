"""Kubernetes label selectors: parsing, validation, matching and the original's formatting.

    selector = parse("board=rpi4, site in (lab1,lab2), !broken")
    selector.matches({"board": "rpi4", "site": "lab1"})  # True
    str(selector)  # "!broken,board=rpi4,site in (lab1,lab2)"  (metav1.FormatLabelSelector)

The formatted string is what the original's client compares with the selector a user gave
(`jmp shell --lease X -l sel`), so it follows Kubernetes exactly: requirements sorted by
key, `k=v` for equalities, `!=` folded into `notin`, set values sorted, `<none>` when empty.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["EMPTY", "InvalidSelector", "Requirement", "Selector", "parse", "validate_labels"]

# Kubernetes' own limits: a name part of 63 characters, a DNS-subdomain prefix of 253.
_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_TOKEN = re.compile(r"\s*(\(|\)|,|==|!=|=|!|[^\s(),=!]+)")
MAX_SELECTOR_LENGTH = 4096


class InvalidSelector(ValueError):
    """A selector, label key or label value that Kubernetes' syntax does not allow."""


def check_key(key: str) -> None:
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not _PREFIX.match(prefix)):
        raise InvalidSelector(f"invalid label key {key!r}: the prefix before '/' must be a DNS subdomain (a.b.c)")
    if not _NAME.match(name):
        raise InvalidSelector(
            f"invalid label key {key!r}: a name is 1-63 characters of letters, digits, '-', '_' and '.', "
            "starting and ending with a letter or digit"
        )


def check_value(key: str, value: str) -> None:
    if value and not _NAME.match(value):
        raise InvalidSelector(
            f"invalid value {value!r} for label {key!r}: at most 63 characters of letters, digits, '-', '_' "
            "and '.', starting and ending with a letter or digit"
        )


def validate_labels(labels: Mapping[str, str]) -> None:
    """Raise InvalidSelector for the first key or value Kubernetes would refuse."""
    for key, value in labels.items():
        check_key(key)
        check_value(key, value)


@dataclass(frozen=True)
class Requirement:
    """One requirement: `op` is one of =, in, notin, exists, !exists (!= is folded into notin)."""

    key: str
    op: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.op in ("=", "in"):
            return value is not None and value in self.values
        if self.op == "notin":
            return value is None or value not in self.values
        if self.op == "exists":
            return value is not None
        return value is None

    def __str__(self) -> str:
        if self.op == "=":
            return f"{self.key}={self.values[0]}"
        if self.op == "exists":
            return self.key
        if self.op == "!exists":
            return f"!{self.key}"
        return f"{self.key} {self.op} ({','.join(self.values)})"


@dataclass(frozen=True)
class Selector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(requirement.matches(labels) for requirement in self.requirements)

    def __bool__(self) -> bool:
        return bool(self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements) if self.requirements else "<none>"

    def equalities(self) -> dict[str, str]:
        """The key=value part (the original's matchLabels)."""
        return {r.key: r.values[0] for r in self.requirements if r.op == "="}

    @classmethod
    def of(cls, requirements: Iterable[Requirement]) -> Selector:
        # Kubernetes sorts by key only, stably.
        return cls(tuple(sorted(requirements, key=lambda r: r.key)))


EMPTY = Selector()


def parse(text: str) -> Selector:
    """Parse a selector string; raise InvalidSelector naming what is wrong."""
    if len(text) > MAX_SELECTOR_LENGTH:
        raise InvalidSelector(f"selector is {len(text)} characters long, at most {MAX_SELECTOR_LENGTH} are allowed")
    if text.strip() in ("", "<none>"):
        return EMPTY
    tokens = _tokens(text)
    requirements: list[Requirement] = []
    position = 0

    def take() -> str:
        nonlocal position
        if position >= len(tokens):
            raise InvalidSelector(f"selector {text!r} ends too early")
        token = tokens[position]
        position += 1
        return token

    def peek() -> str | None:
        return tokens[position] if position < len(tokens) else None

    while True:
        token = take()
        if token == "!":
            key = take()
            check_key(key)
            requirements.append(Requirement(key, "!exists"))
        else:
            key = token
            if key in ("(", ")", ",", "=", "==", "!="):
                raise InvalidSelector(f"selector {text!r}: expected a label key, found {key!r}")
            check_key(key)
            after = peek()
            if after in (None, ","):
                requirements.append(Requirement(key, "exists"))
            elif after in ("=", "==", "!="):
                take()
                value = "" if peek() in (None, ",") else take()
                check_value(key, value)
                requirements.append(Requirement(key, "=" if after != "!=" else "notin", (value,)))
            elif after in ("in", "notin"):
                take()
                if take() != "(":
                    raise InvalidSelector(f"selector {text!r}: expected '(' after {after!r}")
                values: list[str] = []
                while True:
                    value = take()
                    if value == ")" and not values:
                        break
                    if value in (",", ")"):
                        value, position = "", position - 1
                    check_value(key, value)
                    values.append(value)
                    separator = take()
                    if separator == ")":
                        break
                    if separator != ",":
                        raise InvalidSelector(f"selector {text!r}: expected ',' or ')' in the values of {key!r}")
                if not values:
                    raise InvalidSelector(f"selector {text!r}: {key} {after} () needs at least one value")
                requirements.append(Requirement(key, after, tuple(sorted(set(values)))))
            else:
                raise InvalidSelector(
                    f"selector {text!r}: after {key!r} expected =, ==, !=, in, notin or ',', found {after!r}"
                )
        following = peek()
        if following is None:
            break
        if following != ",":
            raise InvalidSelector(f"selector {text!r}: expected ',' between requirements, found {following!r}")
        take()
    return Selector.of(requirements)


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None:  # pragma: no cover - the pattern matches any non-space character
            raise InvalidSelector(f"selector {text!r}: unexpected character at {position}")
        tokens.append(match.group(1))
        position = match.end()
    return tokens
