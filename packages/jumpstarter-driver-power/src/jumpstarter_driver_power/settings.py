"""Checks of configuration values that the drivers share.

An exporter configuration converts values to the fields' types before a driver is built;
a driver built from Python gets no such conversion, so each check also refuses values of
the wrong type. Every error names the setting and what it should be.
"""

from __future__ import annotations

import math


def check_seconds(value: object, setting: str) -> float:
    """A number of seconds above 0 (and finite): the value as a float."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not (0 < value < math.inf):
        raise ValueError(f"{setting} must be a number of seconds above 0, not {value!r}")
    return float(value)


def check_number(value: object, setting: str, what: str, low: int, high: int) -> int:
    """An int from `low` to `high`; `what` says what it counts (``"a port of the hub"``)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{setting} must be the number of {what}, from {low} to {high}, not {value!r}")
    return value
