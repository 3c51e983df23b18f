"""Protobuf descriptors as JSON data: fields, enums and gRPC methods, as they matter on the wire.

Shared by peer_protocol.py, which describes the original's generated modules, and by the
conformance test, which describes ours: one function describes both sides, so only the
descriptors themselves can differ. Uses nothing but the descriptor objects given to it.
"""

from __future__ import annotations

from typing import Any


def _type_names(field: Any) -> dict[int, str]:
    return {getattr(field, name): name for name in dir(field) if name.startswith("TYPE_")}


def describe_field(field: Any) -> dict[str, Any]:
    referenced = field.message_type or field.enum_type
    return {
        "name": field.name,
        "type": _type_names(field)[field.type],
        "repeated": field.is_repeated,
        "packed": field.is_packed,
        "presence": field.has_presence,
        "map": bool(field.message_type is not None and field.message_type.GetOptions().map_entry),
        "references": referenced.full_name if referenced is not None else None,
    }


def describe_message(message: Any) -> dict[str, dict[str, Any]]:
    """Fields by number (as text, for JSON)."""
    return {str(field.number): describe_field(field) for field in message.fields}


def _messages(message: Any) -> dict[str, Any]:
    found = {message.full_name: describe_message(message)}
    for nested in message.nested_types:  # map entries among them
        found.update(_messages(nested))
    return found


def describe_files(*files: Any) -> dict[str, Any]:
    """Messages (nested ones too), enums and method paths of the given file descriptors."""
    messages: dict[str, Any] = {}
    enums: dict[str, dict[str, int]] = {}
    methods: dict[str, dict[str, Any]] = {}
    for file in files:
        for message in file.message_types_by_name.values():
            messages.update(_messages(message))
        for enum in file.enum_types_by_name.values():
            enums[enum.full_name] = {value.name: value.number for value in enum.values}
        for service in file.services_by_name.values():
            for method in service.methods:
                methods[f"/{service.full_name}/{method.name}"] = {
                    "client_streaming": method.client_streaming,
                    "server_streaming": method.server_streaming,
                    "input": method.input_type.full_name,
                    "output": method.output_type.full_name,
                }
    return {"messages": messages, "enums": enums, "methods": methods}
