"""Durations: read as the original's commands take them, said back as users write them."""

from __future__ import annotations

import pytest

from jumpstarter.config.durations import format_duration, parse_duration


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (0.25, "0.25s"), (45, "45s"), (60, "1m"), (90, "1m30s"), (3600, "1h"), (5400, "1h30m"),
        (10800, "3h"), (86400, "1d"), (93784, "1d2h3m4s"), (7200.4, "2h"), (7 * 86400, "7d"),
    ],
)  # fmt: skip
def test_a_duration_is_said_as_users_write_it(seconds: float, said: str) -> None:
    assert format_duration(seconds) == said


@pytest.mark.parametrize("seconds", [0.5, 1, 59, 61, 3599, 3601, 86399, 86401, 90061, 30 * 86400 + 1])
def test_what_is_said_reads_back_as_the_same_duration(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("30m", 1800), ("1h30m", 5400), ("1d", 86400), ("PT1H30M", 5400), ("01:30:00", 5400),
     ("1d 12h", 129600), ("2 days, 01:00:00", 176400)],
)  # fmt: skip
def test_the_originals_spellings_are_read(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [("1x", "'1x' is not a duration: write 30m, 1h30m, 1d, 90 (seconds), PT1H30M or 01:30:00"),
     ("0s", "'0s': a duration must be more than 0 seconds")],
)  # fmt: skip
def test_a_wrong_duration_says_which_are_taken(text: str, message: str) -> None:
    with pytest.raises(ValueError) as error:
        parse_duration(text)
    assert str(error.value) == message
