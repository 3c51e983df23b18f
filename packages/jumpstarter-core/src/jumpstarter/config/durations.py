"""Durations as the original's commands take them: ``30m``, ``1h30m``, ``1d``, ``90``, ``PT1H30M``, ``01:30:00``.

`format_duration` says a duration back the way users write it (``3h``, ``1h30m``), which
`parse_duration` reads again: messages about durations users give speak their language.
"""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["DURATION_HELP", "format_duration", "parse_duration"]

_HUMAN = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?$")
_ISO = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")
_CLOCK = re.compile(r"^(?:(\d+) days?, )?(\d+):(\d{2}):(\d{2}(?:\.\d+)?)$")

DURATION_HELP = "30m, 1h30m, 1d, 90 (seconds), PT1H30M or 01:30:00"


def parse_duration(text: str) -> float:
    """Seconds from the original's spellings of a duration; ValueError saying which are taken."""
    value = text.strip().replace(" ", "") if not _CLOCK.match(text.strip()) else text.strip()
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
        for pattern in (_HUMAN, _ISO, _CLOCK):
            match = pattern.match(value)
            if match is not None and any(match.groups()):
                days, hours, minutes, secs = (float(g) if g else 0.0 for g in match.groups())
                seconds = timedelta(days=days, hours=hours, minutes=minutes, seconds=secs).total_seconds()
                break
        else:
            raise ValueError(f"{text!r} is not a duration: write {DURATION_HELP}") from None
    if not seconds > 0:
        raise ValueError(f"{text!r}: a duration must be more than 0 seconds")
    return seconds


def format_duration(seconds: float) -> str:
    """`seconds` as users write a duration: ``3h``, ``1h30m``, ``1d2h``, ``45s``, ``1.5s``.

    Whole seconds from a minute up (a lease of 2h0m0.4s is said 2h); below a minute, to the millisecond.
    """
    if seconds < 60:
        return f"{round(seconds, 3):g}s"
    whole = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
