"""Driver call arguments and results on the wire.

Two encodings exist, chosen per call by what the two peers support:

- **typed** (`jumpstarter.v1.TypedValue`), used when both peers advertise the
  ``typed-values`` capability: ints stay ints whatever their size, floats stay floats,
  bytes stay bytes (any content), and map keys keep their type.
- **JSON** (`google.protobuf.Value`), the only one the original jumpstarter 0.9.0
  understands: every number is a double and there are no bytes. Values that JSON cannot
  carry exactly (an int beyond 2**53, bytes that are not UTF-8) raise `ValueError`
  instead of being silently altered.

Both encoders first reduce rich values to plain data the same way: pydantic models and
dataclasses become maps of their fields, tuples and sets become lists, enums become their
value, and other types pydantic knows (UUID, datetime, Decimal, Path...) become the text
pydantic's JSON mode gives them. The receiver gets plain data back; a driver method gets
its arguments validated into the types its signature names (see
`jumpstarter.exporter.dispatch`).

Large bytes values (`BULK_MIN_BYTES` and more) may travel beside a typed message rather than
in it: given a `BulkSink`, `fill_typed` hands each of them to the sink, which puts a
`BulkValue` reference in their place; `decode_typed` turns a reference back into a value
with the resolver that `bulk_values_resolved` makes current. How their bytes travel is
`jumpstarter.common.wire`'s business.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from enum import Enum
from typing import Any

from google.protobuf import struct_pb2

from jumpstarter.common.protocol import BULK_MIN_BYTES
from jumpstarter.v1 import values_pb2

TypedValue = values_pb2.TypedValue
JsonValue = struct_pb2.Value

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
# Doubles represent every integer up to 2**53 exactly; beyond that JSON peers would round.
_JSON_SAFE_INT = 2**53

BulkSink = Callable[[TypedValue, memoryview], None]
"""Takes a large bytes value (as a flat view) and fills the message with a reference to it."""
BulkResolver = Callable[[str, int], Any]
"""The value of the BulkValue with this uuid and size."""

_bulk_resolver: ContextVar[BulkResolver | None] = ContextVar("jumpstarter_bulk_resolver", default=None)


def simplify(value: Any) -> Any:
    """Reduce a value that is not plain data (list, dict, scalar) by one level.

    Raises TypeError for values that cannot be sent.
    """
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    if isinstance(value, os.PathLike):  # pathlib's paths and the like (no pathlib to import for it)
        return os.fspath(value)
    if hasattr(value, "__pydantic_serializer__") and hasattr(value, "model_dump"):
        return value.model_dump(mode="python", by_alias=True)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    # Subclasses of the plain types (a str subclass, an int subclass...) travel as their base.
    base: type[Any]
    for base in (bool, int, float, str, bytes, list, dict):
        if isinstance(value, base):
            return base(value)
    from pydantic_core import PydanticSerializationError, to_jsonable_python

    try:
        return to_jsonable_python(value)
    except PydanticSerializationError:
        raise TypeError(
            f"cannot send a value of type {type(value).__qualname__}: driver calls carry None, bool, int, float, "
            "str, bytes, lists, dicts, enums, pydantic models, dataclasses and the types pydantic serializes "
            "(UUID, datetime, Decimal, Path...)"
        ) from None


# -- typed encoding --------------------------------------------------------------------


def encode_typed(value: Any) -> TypedValue:
    message = TypedValue()
    fill_typed(message, value)
    return message


def fill_typed(message: TypedValue, value: Any, bulk: BulkSink | None = None) -> None:
    """Encode `value` into an empty TypedValue message; bytes values of BULK_MIN_BYTES or more
    go to `bulk`, if given, instead of into the message."""
    kind = type(value)
    if value is None:
        # protoc's .pyi types the field as the enum class, types-protobuf its values as NullValue.ValueType.
        message.null_value = struct_pb2.NULL_VALUE  # type: ignore[assignment]
    elif kind is bool:
        message.bool_value = value
    elif kind is int:
        if _INT64_MIN <= value <= _INT64_MAX:
            message.int_value = value
        else:
            message.big_int_value = str(value)
    elif kind is float:
        message.float_value = value
    elif kind is str:
        message.string_value = value
    elif kind is bytes:
        if bulk is not None and len(value) >= BULK_MIN_BYTES:
            bulk(message, memoryview(value))
        else:
            message.bytes_value = value
    elif kind is list or kind is tuple:
        values = message.list_value.values
        message.list_value.SetInParent()
        for item in value:
            fill_typed(values.add(), item, bulk)
    elif kind is dict:
        entries = message.map_value.entries
        message.map_value.SetInParent()
        for key, item in value.items():
            entry = entries.add()
            fill_typed(entry.key, key)
            fill_typed(entry.value, item, bulk)
    elif bulk is not None and (view := _large_view(value)) is not None:
        bulk(message, view)  # a bytearray or memoryview, sent without a copy
    else:
        fill_typed(message, simplify(value), bulk)


def _large_view(value: Any) -> memoryview | None:
    """A flat byte view of a large bytearray or contiguous memoryview, else None."""
    if not isinstance(value, (bytearray, memoryview)):
        return None
    view = memoryview(value)
    if view.nbytes < BULK_MIN_BYTES or not view.contiguous:
        return None
    return view.cast("B")


@contextmanager
def bulk_values_resolved(resolve: BulkResolver) -> Iterator[None]:
    """Within this block (in this thread), `decode_typed` turns BulkValues into `resolve(uuid, size)`.

    Outside one, a BulkValue is refused (ValueError): a message holds one only where it says so.
    """
    token = _bulk_resolver.set(resolve)
    try:
        yield
    finally:
        _bulk_resolver.reset(token)


def _decode_bulk(message: TypedValue) -> Any:
    resolve = _bulk_resolver.get()
    if resolve is None:
        raise ValueError("the message holds a bulk value without announcing it")
    return resolve(message.bulk_value.uuid, message.bulk_value.size)


def _decode_list(message: TypedValue) -> list[Any]:
    return [decode_typed(item) for item in message.list_value.values]


def _decode_map(message: TypedValue) -> dict[Any, Any]:
    result: dict[Any, Any] = {}
    for entry in message.map_value.entries:
        key = decode_typed(entry.key)
        # Tuples travel as lists; as a key, a list can only have been a tuple.
        result[tuple(key) if type(key) is list else key] = decode_typed(entry.value)
    return result


_TYPED_DECODERS: dict[str | None, Callable[[TypedValue], Any]] = {
    None: lambda message: None,
    "null_value": lambda message: None,
    "bool_value": lambda message: message.bool_value,
    "int_value": lambda message: message.int_value,
    "big_int_value": lambda message: int(message.big_int_value),
    "float_value": lambda message: message.float_value,
    "string_value": lambda message: message.string_value,
    "bytes_value": lambda message: message.bytes_value,
    "list_value": _decode_list,
    "map_value": _decode_map,
    "bulk_value": _decode_bulk,
}


def decode_typed(message: TypedValue) -> Any:
    """Decode a TypedValue; an empty message (no kind set) is None."""
    return _TYPED_DECODERS[message.WhichOneof("kind")](message)


# -- JSON encoding (google.protobuf.Value) ---------------------------------------------


def encode_json(value: Any) -> JsonValue:
    message = JsonValue()
    fill_json(message, value)
    return message


def fill_json(message: JsonValue, value: Any) -> None:
    """Encode `value` into an empty google.protobuf.Value as JSON would carry it."""
    kind = type(value)
    if value is None:
        message.null_value = struct_pb2.NULL_VALUE
    elif kind is bool:
        message.bool_value = value
    elif kind is int:
        if not -_JSON_SAFE_INT <= value <= _JSON_SAFE_INT:
            raise ValueError(
                f"the integer {value} cannot be sent exactly to a peer that only speaks JSON values "
                "(such as jumpstarter 0.9.0), which receives numbers as 64-bit floats; send it as a string"
            )
        message.number_value = value
    elif kind is float:
        # JSON has no inf or nan; JSON-mode dumps turn them into null.
        if math.isfinite(value):
            message.number_value = value
        else:
            message.null_value = struct_pb2.NULL_VALUE
    elif kind is str:
        message.string_value = value
    elif kind is bytes:
        try:
            message.string_value = value.decode()
        except UnicodeDecodeError:
            raise ValueError(
                "bytes that are not UTF-8 cannot be sent to a peer that only speaks JSON values "
                "(such as jumpstarter 0.9.0); use a byte stream or a resource for binary data"
            ) from None
    elif kind is list or kind is tuple:
        values = message.list_value.values
        message.list_value.SetInParent()
        for item in value:
            fill_json(values.add(), item)
    elif kind is dict:
        fields = message.struct_value.fields
        message.struct_value.SetInParent()
        for key, item in value.items():
            fill_json(fields[_json_key(key)], item)
    else:
        fill_json(message, simplify(value))


def _json_key(key: Any) -> str:
    if type(key) is str:
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, (int, float)):
        return str(key)
    simple = simplify(key)
    return simple if isinstance(simple, str) else str(simple)


_JSON_DECODERS: dict[str | None, Callable[[JsonValue], Any]] = {
    None: lambda message: None,
    "null_value": lambda message: None,
    "number_value": lambda message: message.number_value,
    "string_value": lambda message: message.string_value,
    "bool_value": lambda message: message.bool_value,
    "struct_value": lambda message: {key: decode_json(item) for key, item in message.struct_value.fields.items()},
    "list_value": lambda message: [decode_json(item) for item in message.list_value.values],
}


def decode_json(message: JsonValue) -> Any:
    """Decode a google.protobuf.Value to JSON data (numbers are floats); no kind set is None."""
    return _JSON_DECODERS[message.WhichOneof("kind")](message)
