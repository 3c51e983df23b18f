"""The driver classes that installed distributions register, read as `j` needs them: fast.

A driver distribution lists its driver classes in the ``jumpstarter.drivers`` entry-point
group (see `jumpstarter.registry`, which loads them). A client only needs their modules, to
allow their client classes (`jumpstarter.client.ClientClassPolicy`): this module reads them
without importing `jumpstarter.registry` or importlib.metadata.
"""

from __future__ import annotations

import importlib.machinery
import os
import sys

ENTRY_POINT_GROUP = "jumpstarter.drivers"


def installed_driver_values() -> tuple[str, ...]:
    """The ``module:Class`` of every installed driver, read anew (a client asks once per connection).

    `jumpstarter.registry.installed_drivers` without the distributions' names and versions, which are read from
    each distribution's metadata: a client that only needs the modules starts faster.
    """
    values = _scan_entry_point_values(ENTRY_POINT_GROUP)
    if values is None:
        import importlib.metadata

        values = {entry_point.value for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    return tuple(sorted(values))


def _scan_entry_point_values(group: str) -> set[str] | None:
    """The values of `group` read straight from the ``entry_points.txt`` of each distribution on
    ``sys.path``, as importlib.metadata finds them (the first of a name on the path counts), without
    importing importlib.metadata (with email, zipfile and csv: a fifth of `j`'s start-up).
    None if the path holds what only importlib.metadata reads (an archive, a custom finder)."""
    path_finder = importlib.machinery.PathFinder
    if any(finder is not path_finder and hasattr(finder, "find_distributions") for finder in sys.meta_path):
        return None  # another finder provides distributions too (importlib.metadata asks each)
    values: set[str] = set()
    seen: set[str] = set()
    for entry in sys.path:
        directory = entry or "."
        try:
            with os.scandir(directory) as listing:
                names = sorted(item.name for item in listing if item.name.endswith((".dist-info", ".egg-info")))
        except NotADirectoryError:
            return None  # a zip archive on the path
        except OSError:
            continue
        for name in names:
            distribution = name.rpartition(".")[0].partition("-")[0].replace("-", "_").replace(".", "_").lower()
            if distribution in seen:
                continue
            seen.add(distribution)
            try:
                with open(os.path.join(directory, name, "entry_points.txt"), encoding="utf-8") as file:
                    text = file.read()
            except OSError:
                continue
            values.update(_section_values(text, group))
    return values


def _section_values(text: str, group: str) -> list[str]:
    """The values of the ``name = value`` lines of section `group` of an entry_points.txt."""
    found: list[str] = []
    inside = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            inside = line[1:-1].strip() == group
        elif inside and "=" in line:
            found.append(line.partition("=")[2].strip())
    return found
