from __future__ import annotations

import pytest

from jumpstarter_controller.selectors import InvalidSelector, parse


@pytest.mark.parametrize(
    ("text", "formatted"),
    [
        ("board=rpi4", "board=rpi4"),
        ("board==rpi4", "board=rpi4"),
        ("board!=rpi4", "board notin (rpi4)"),
        ("site in (b, a), board=x", "board=x,site in (a,b)"),
        ("site notin (a)", "site notin (a)"),
        ("!broken, board", "board,!broken"),
        ("jumpstarter.dev/name=ex1", "jumpstarter.dev/name=ex1"),
        ("", "<none>"),
        ("k=", "k="),
    ],
)
def test_parse_and_format_like_kubernetes(text: str, formatted: str) -> None:
    assert str(parse(text)) == formatted
    assert str(parse(formatted)) == formatted


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("board=rpi4", {"board": "rpi4"}, True),
        ("board=rpi4", {"board": "rpi5"}, False),
        ("board!=rpi4", {}, True),
        ("board!=rpi4", {"board": "rpi4"}, False),
        ("site in (a,b)", {"site": "b"}, True),
        ("site in (a,b)", {}, False),
        ("site notin (a,b)", {}, True),
        ("board", {"board": ""}, True),
        ("!board", {"board": "x"}, False),
        ("board=x,!broken", {"board": "x"}, True),
    ],
)
def test_matches(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse(text).matches(labels) is expected


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("board=rpi4,", "ends too early"),
        ("board in rpi4", "expected '('"),
        ("board in ()", "at least one value"),
        ("=x", "expected a label key"),
        ("bo ard=x", "expected =, ==, !=, in, notin"),
        ("board=" + "x" * 64, "at most 63"),
        ("Bad_Prefix/k=v", "DNS subdomain"),
        ("-k=v", "a name is 1-63"),
        ("k=v" * 2000, "at most 4096"),
        ("k in (a b)", "expected ',' or ')'"),
    ],
)
def test_invalid_selectors_say_what_is_wrong(text: str, complaint: str) -> None:
    with pytest.raises(InvalidSelector, match=complaint.replace("(", r"\(").replace(")", r"\)")):
        parse(text)
