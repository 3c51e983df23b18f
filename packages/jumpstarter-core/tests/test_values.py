"""Encoding of call arguments and results: typed values exactly, JSON values as the original does."""

from __future__ import annotations

import dataclasses
import enum
import math
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import PurePosixPath
from typing import Any

import pytest
from google.protobuf import json_format, struct_pb2
from pydantic import BaseModel, Field

from jumpstarter.common.values import decode_json, decode_typed, encode_json, encode_typed
from jumpstarter.v1 import values_pb2


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 7


class Reading(BaseModel):
    voltage: float
    current: int
    tag: bytes = b""
    when: datetime | None = None


class Aliased(BaseModel):
    value: int = Field(alias="Value")


@dataclasses.dataclass
class Point:
    x: int
    y: int


def typed_roundtrip(value: Any) -> Any:
    wire = encode_typed(value).SerializeToString()
    return decode_typed(values_pb2.TypedValue.FromString(wire))


def json_roundtrip(value: Any) -> Any:
    wire = encode_json(value).SerializeToString()
    return decode_json(struct_pb2.Value.FromString(wire))


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -1,
        2**63 - 1,
        -(2**63),
        2**64,
        -(10**40),
        1.5,
        -0.0,
        "",
        "héllo",
        b"",
        b"\x00\xff\xfe",
        [],
        [1, [2, [3, b"x"]]],
        {},
        {"a": 1, "b": {"c": [None]}},
        {1: "one", b"k": 2, None: 3, 2.5: 4, False: 5},
    ],
    ids=repr,
)
def test_typed_values_round_trip_exactly(value: Any) -> None:
    result = typed_roundtrip(value)
    assert result == value
    assert type(result) is type(value)


def test_typed_keeps_nested_types() -> None:
    value = {"n": 5, "f": 5.0, "b": b"5", "l": [5, 5.0]}
    result = typed_roundtrip(value)
    assert [type(result[key]) for key in "nfb"] == [int, float, bytes]
    assert [type(item) for item in result["l"]] == [int, float]


def test_typed_special_floats() -> None:
    assert typed_roundtrip(math.inf) == math.inf
    assert math.isnan(typed_roundtrip(math.nan))


def test_typed_map_order_and_tuple_keys() -> None:
    value = {"z": 1, "a": 2, (1, "x"): 3}
    result = typed_roundtrip(value)
    assert list(result) == ["z", "a", (1, "x")]


def test_rich_values_become_plain_data() -> None:
    when = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    value = {
        "model": Reading(voltage=5, current=2, tag=b"\x01", when=when),
        "dataclass": Point(1, 2),
        "tuple": (1, 2),
        "set": {3},
        "enum": Color.RED,
        "intenum": Level.HIGH,
        "uuid": uuid.UUID(int=1),
        "decimal": Decimal("1.10"),
        "path": PurePosixPath("/dev/ttyUSB0"),
        "delta": timedelta(minutes=1, seconds=30),
        "bytearray": bytearray(b"ab"),
    }
    assert typed_roundtrip(value) == {
        "model": {"voltage": 5.0, "current": 2, "tag": b"\x01", "when": "2024-05-01T12:30:00Z"},
        "dataclass": {"x": 1, "y": 2},
        "tuple": [1, 2],
        "set": [3],
        "enum": "red",
        "intenum": 7,
        "uuid": "00000000-0000-0000-0000-000000000001",
        "decimal": "1.10",
        "path": "/dev/ttyUSB0",
        "delta": "PT1M30S",
        "bytearray": b"ab",
    }


def test_models_use_their_aliases_so_they_validate_back() -> None:
    assert Aliased.model_validate(typed_roundtrip(Aliased(Value=3))).value == 3


def test_unsendable_value_says_what_is_supported() -> None:
    with pytest.raises(TypeError, match="cannot send a value of type object"):
        encode_typed(object())
    with pytest.raises(TypeError, match="cannot send a value of type object"):
        encode_json([object()])


# -- JSON values, as the original jumpstarter 0.9.0 sends and reads them -------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (True, True),
        (5, 5.0),
        (2**53, float(2**53)),
        (1.25, 1.25),
        (math.inf, None),
        (math.nan, None),
        ("s", "s"),
        (b"utf-8 text", "utf-8 text"),
        ([1, "a", None], [1.0, "a", None]),
        ((1, 2), [1.0, 2.0]),
        ({"a": {"b": 1}}, {"a": {"b": 1.0}}),
        ({1: "x", 2.5: "y", False: "z"}, {"1": "x", "2.5": "y", "false": "z"}),
        (Point(1, 2), {"x": 1.0, "y": 2.0}),
        (Color.RED, "red"),
        (uuid.UUID(int=2), "00000000-0000-0000-0000-000000000002"),
    ],
    ids=repr,
)
def test_json_values_match_the_original_encoding(value: Any, expected: Any) -> None:
    result = json_roundtrip(value)
    assert result == expected
    assert type(result) is type(expected)


def test_json_encoding_is_plain_protobuf_json() -> None:
    # What the original builds with json_format.ParseDict from a JSON-mode dump.
    value = {"list": [1, "two", None, True], "nested": {"x": 1.5}}
    assert encode_json(value) == json_format.ParseDict(value, struct_pb2.Value())


def test_json_refuses_what_it_would_alter() -> None:
    with pytest.raises(ValueError, match="cannot be sent exactly"):
        encode_json(2**53 + 1)
    with pytest.raises(ValueError, match="not UTF-8"):
        encode_json(b"\xff")


def test_empty_messages_decode_as_none() -> None:
    assert decode_typed(values_pb2.TypedValue()) is None
    assert decode_json(struct_pb2.Value()) is None
