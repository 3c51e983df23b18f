"""`walk_tree`: the one walk of a tree of named children (drivers, or the entries of a configuration)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Generic, NamedTuple, Protocol, TypeVar, cast


class _Node(Protocol):
    @property
    def children(self) -> Mapping[str, object] | None: ...


T = TypeVar("T", bound=_Node)


class Place(NamedTuple, Generic[T]):
    """A node of a tree and where it is."""

    node: T
    parent: T | None
    name: str | None
    """The node's name in its parent; None for the root."""
    path: str
    """The names from the root, such as ``/dut/serial``; empty for the root."""


def walk_tree(root: T) -> Iterator[Place[T]]:
    """The nodes of the tree under `root`, depth-first, parents before their children.

    A node reachable under two names (an alias) is visited under each of them.
    """
    stack: list[Place[T]] = [Place(root, None, None, "")]
    while stack:
        place = stack.pop()
        yield place
        # The nodes of one tree are of one kind (drivers, or configuration entries): a child is a T.
        children = cast("Mapping[str, T]", place.node.children or {})
        # Reversed onto the stack, so that children come out in their declared order.
        for name, child in reversed(list(children.items())):
            stack.append(Place(child, place.node, name, f"{place.path}/{name}"))
