"""Creating the drivers of one build from checked entries and their plans."""

from __future__ import annotations

import logging
from typing import Any

from jumpstarter.config.exporter._entries import Entry
from jumpstarter.config.exporter._settings import Plan
from jumpstarter.config.yaml import KEY, Located
from jumpstarter.driver import Composite, Driver

logger = logging.getLogger("jumpstarter.config.exporter")


def build_tree(
    located: Located, plans: dict[Entry, Plan], entries: dict[str, Entry], description: str | None
) -> Composite:
    """A new tree: a Composite root over `entries`. When a constructor raises, closes what was made."""
    return _Builder(located, plans).tree(entries, description)


class _Builder:
    """Creates the drivers of one build, each entry once, so that an alias is its target's very object."""

    def __init__(self, located: Located, plans: dict[Entry, Plan]) -> None:
        self.located = located
        self.plans = plans
        self.made: dict[Entry, Driver] = {}

    def tree(self, entries: dict[str, Entry], description: str | None) -> Composite:
        try:
            children = {name: self.driver(entry) for name, entry in entries.items()}
        except BaseException:
            self.close_made()
            raise
        return Composite(description=description, children=children)

    def driver(self, entry: Entry) -> Driver:
        entry = entry.target or entry
        if entry in self.made:
            return self.made[entry]
        # Only what the entry says: a driver class may have defaults of its own for these.
        given: dict[str, Any] = {}
        if entry.children is not None:
            given["children"] = {name: self.driver(child) for name, child in entry.children.items()}
        if entry.description is not None:
            given["description"] = entry.description
        if entry.methods_description is not None:
            given["methods_description"] = dict(entry.methods_description)
        if entry.type is None:
            driver: Driver = Composite(**given)
        else:
            driver_class, config = self.plans[entry]
            try:
                driver = driver_class(**config, **given)
            except Exception as error:
                raise self.located.error(
                    (*entry.path, KEY),
                    f"creating {driver_class.__module__}.{driver_class.__qualname__} for entry {entry.name!r} failed: "
                    f"{type(error).__name__}: {error}",
                    "check the entry's config: against the driver's documentation, and that its hardware is there",
                ) from error
        self.made[entry] = driver
        return driver

    def close_made(self) -> None:
        """Close the drivers created before the build failed: they may hold hardware."""
        for entry, driver in reversed(self.made.items()):
            try:
                driver.close()
            except Exception:
                logger.exception("closing %s driver %r after a failed build failed", type(driver).__name__, entry.name)
