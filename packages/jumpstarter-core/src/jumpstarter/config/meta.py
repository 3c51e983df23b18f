"""`metadata:`, the identity of an exporter or a client in a lab: Kubernetes-style names.

A lab controller keeps exporters and clients as Kubernetes-style objects, whose names are
DNS-1123 subdomains (``bench-3``, ``lab.bench-3``) in namespaces that are DNS-1123 labels
(``lab-a``). The same rule keeps a name safe where it becomes part of a file path (an
exporter's state directory): no ``/``, no ``..``, nothing hidden.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

MAX_NAME_LENGTH: Final = 253  # a DNS-1123 subdomain
MAX_NAMESPACE_LENGTH: Final = 63  # a DNS-1123 label

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_NAME = re.compile(rf"{_LABEL}(\.{_LABEL})*")
_NAMESPACE = re.compile(_LABEL)

NAME_RULE: Final = (
    f"a Kubernetes name: lowercase letters, digits, '-' and '.', starting and ending with a letter or a digit, "
    f"at most {MAX_NAME_LENGTH} characters (such as bench-3)"
)
NAMESPACE_RULE: Final = (
    f"a Kubernetes namespace: lowercase letters, digits and '-', starting and ending with a letter or a digit, "
    f"at most {MAX_NAMESPACE_LENGTH} characters (such as lab-a)"
)


def name_problem(name: str, *, namespace: bool = False) -> str | None:
    """Why `name` is not a Kubernetes name (a namespace's, with `namespace`), or None if it is one."""
    pattern, limit = (_NAMESPACE, MAX_NAMESPACE_LENGTH) if namespace else (_NAME, MAX_NAME_LENGTH)
    if pattern.fullmatch(name) and len(name) <= limit:
        return None
    what = "namespace" if namespace else "name"
    if not name:
        return f"an empty {what}"
    if len(name) > limit:
        return f"{len(name)} characters long, more than a Kubernetes {what} may be ({limit})"
    valid = set("abcdefghijklmnopqrstuvwxyz0123456789-" + ("" if namespace else "."))
    found = ["uppercase letters"] if any("A" <= character <= "Z" for character in name) else []
    found += [repr(c) for c in sorted({c for c in name if c not in valid and not "A" <= c <= "Z"})]
    reason = f"it has {' and '.join(found)}" if found else "it must start and end with a letter or a digit"
    suggestion = _suggest(name, namespace)
    return f"not a Kubernetes {what} ({reason})" + (f"; {suggestion!r} would be one" if suggestion else "")


def _suggest(name: str, namespace: bool) -> str | None:
    allowed = "a-z0-9-" if namespace else "a-z0-9.-"
    suggestion = re.sub(rf"[^{allowed}]+", "-", name.lower())
    suggestion = re.sub(r"([.-])[.-]+", r"\1", suggestion).strip(".-")
    if namespace:
        suggestion = suggestion[:MAX_NAMESPACE_LENGTH].rstrip("-")
    return suggestion if suggestion and name_problem(suggestion, namespace=namespace) is None else None


def _check_name(name: str) -> str:
    problem = name_problem(name)
    if problem is not None:
        raise ValueError(problem)
    return name


def _check_namespace(namespace: str) -> str:
    problem = name_problem(namespace, namespace=True)
    if problem is not None:
        raise ValueError(problem)
    return namespace


Name = Annotated[str, AfterValidator(_check_name), Field(description=NAME_RULE)]
Namespace = Annotated[str, AfterValidator(_check_namespace), Field(description=NAMESPACE_RULE)]


class ObjectMeta(BaseModel):
    """Who an exporter or a client is in a lab controller."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    namespace: Namespace | None = Field(None, description=NAMESPACE_RULE)
    name: Name = Field(description=NAME_RULE)


__all__ = ["NAMESPACE_RULE", "NAME_RULE", "Name", "Namespace", "ObjectMeta", "name_problem"]
