from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TypedValue(_message.Message):
    __slots__ = ("null_value", "bool_value", "int_value", "big_int_value", "float_value", "string_value", "bytes_value", "list_value", "map_value", "bulk_value")
    NULL_VALUE_FIELD_NUMBER: _ClassVar[int]
    BOOL_VALUE_FIELD_NUMBER: _ClassVar[int]
    INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    BIG_INT_VALUE_FIELD_NUMBER: _ClassVar[int]
    FLOAT_VALUE_FIELD_NUMBER: _ClassVar[int]
    STRING_VALUE_FIELD_NUMBER: _ClassVar[int]
    BYTES_VALUE_FIELD_NUMBER: _ClassVar[int]
    LIST_VALUE_FIELD_NUMBER: _ClassVar[int]
    MAP_VALUE_FIELD_NUMBER: _ClassVar[int]
    BULK_VALUE_FIELD_NUMBER: _ClassVar[int]
    null_value: _struct_pb2.NullValue
    bool_value: bool
    int_value: int
    big_int_value: str
    float_value: float
    string_value: str
    bytes_value: bytes
    list_value: TypedList
    map_value: TypedMap
    bulk_value: BulkValue
    def __init__(self, null_value: _Optional[_Union[_struct_pb2.NullValue, str]] = ..., bool_value: _Optional[bool] = ..., int_value: _Optional[int] = ..., big_int_value: _Optional[str] = ..., float_value: _Optional[float] = ..., string_value: _Optional[str] = ..., bytes_value: _Optional[bytes] = ..., list_value: _Optional[_Union[TypedList, _Mapping]] = ..., map_value: _Optional[_Union[TypedMap, _Mapping]] = ..., bulk_value: _Optional[_Union[BulkValue, _Mapping]] = ...) -> None: ...

class BulkValue(_message.Message):
    __slots__ = ("uuid", "size")
    UUID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    uuid: str
    size: int
    def __init__(self, uuid: _Optional[str] = ..., size: _Optional[int] = ...) -> None: ...

class TypedList(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedCompositeFieldContainer[TypedValue]
    def __init__(self, values: _Optional[_Iterable[_Union[TypedValue, _Mapping]]] = ...) -> None: ...

class TypedMap(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[TypedMapEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[TypedMapEntry, _Mapping]]] = ...) -> None: ...

class TypedMapEntry(_message.Message):
    __slots__ = ("key", "value")
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    key: TypedValue
    value: TypedValue
    def __init__(self, key: _Optional[_Union[TypedValue, _Mapping]] = ..., value: _Optional[_Union[TypedValue, _Mapping]] = ...) -> None: ...

class TypedArguments(_message.Message):
    __slots__ = ("args", "kwargs", "bulk_values", "bulk_results")
    ARGS_FIELD_NUMBER: _ClassVar[int]
    KWARGS_FIELD_NUMBER: _ClassVar[int]
    BULK_VALUES_FIELD_NUMBER: _ClassVar[int]
    BULK_RESULTS_FIELD_NUMBER: _ClassVar[int]
    args: _containers.RepeatedCompositeFieldContainer[TypedValue]
    kwargs: _containers.RepeatedCompositeFieldContainer[KeywordArgument]
    bulk_values: int
    bulk_results: bool
    def __init__(self, args: _Optional[_Iterable[_Union[TypedValue, _Mapping]]] = ..., kwargs: _Optional[_Iterable[_Union[KeywordArgument, _Mapping]]] = ..., bulk_values: _Optional[int] = ..., bulk_results: _Optional[bool] = ...) -> None: ...

class KeywordArgument(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: TypedValue
    def __init__(self, name: _Optional[str] = ..., value: _Optional[_Union[TypedValue, _Mapping]] = ...) -> None: ...
