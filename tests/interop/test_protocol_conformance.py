"""Static conformance with the original 0.9.0 protocol modules (spec 5.1, S1-S3).

`peer_protocol.py` describes the original's generated descriptors and serializes and parses
messages with them, in the upstream virtual environment; this module does the same with
ours and compares. One run of the peer serves the whole module.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.message import Message

from jumpstarter.client.v1 import client_pb2
from jumpstarter.v1 import common_pb2, jumpstarter_pb2, kubernetes_pb2, router_pb2

pytestmark = pytest.mark.interop


def _sibling(name: str) -> ModuleType:
    # Test modules cannot import their siblings (importlib import mode): load it by path.
    spec = importlib.util.spec_from_file_location(f"interop_{name}", Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The very function peer_protocol.py describes the original's descriptors with.
protodump = _sibling("protodump")

V1 = "jumpstarter.v1"
# The ExporterService side of the original's jumpstarter.proto (the controller's messages are not ours to serve).
SESSION_MESSAGES = [
    f"{V1}.{name}"
    for name in (
        "GetReportResponse",
        "DriverInstanceReport",
        "Endpoint",
        "DriverCallRequest",
        "DriverCallResponse",
        "StreamingDriverCallRequest",
        "StreamingDriverCallResponse",
        "LogStreamResponse",
        "ResetRequest",
        "ResetResponse",
        "GetStatusRequest",
        "GetStatusResponse",
        "EndSessionRequest",
        "EndSessionResponse",
        "StreamRequest",
        "StreamResponse",
    )
]
ENUMS = [f"{V1}.ExporterStatus", f"{V1}.LogSource", f"{V1}.FrameType"]
SERVICE_PATHS = (f"/{V1}.ExporterService/", f"/{V1}.RouterService/")


def _field(name: str, type_: str, *, presence: bool = False, map_: bool = False, ref: str | None = None) -> Any:
    return {
        "name": name,
        "type": type_,
        "repeated": map_,
        "packed": False,
        "presence": presence,
        "map": map_,
        "references": ref,
    }


# Fields the spec marks post-0.9.0, which ours may have beyond the original's, with their spec shape.
POST_0_9_0_FIELDS = {
    (f"{V1}.GetReportResponse", 5): _field("motd", "TYPE_STRING"),
    (f"{V1}.LogStreamResponse", 5): _field("driver_type", "TYPE_STRING", presence=True),
    (f"{V1}.LogStreamResponse", 6): _field("operation", "TYPE_STRING", presence=True),
    (f"{V1}.LogStreamResponse", 7): _field("timestamp", "TYPE_MESSAGE", presence=True, ref="google.protobuf.Timestamp"),
    (f"{V1}.LogStreamResponse", 8): _field(
        "structured_fields", "TYPE_MESSAGE", map_=True, ref=f"{V1}.LogStreamResponse.StructuredFieldsEntry"
    ),
}
# Our own protocol extensions (typed values, capabilities) start here, clear of upstream's numbering.
OWN_EXTENSIONS_FROM = 100

UUID_A = "0b7e3c6a-5d1f-4c2e-9a8b-1f2e3d4c5b6a"
UUID_B = "7c9d8e1f-2a3b-4c5d-8e6f-7a8b9c0d1e2f"

# Every field of the 0.9.0 subset filled, including explicitly present defaults (spec S3).
SAMPLES: dict[str, tuple[str, dict[str, Any]]] = {
    "report": (
        "GetReportResponse",
        {
            "uuid": UUID_A,
            "labels": {"zone": "lab-1", "jumpstarter.dev/name": "bench"},
            "reports": [
                {
                    "uuid": UUID_A,
                    "labels": {"jumpstarter.dev/client": "jumpstarter_driver_composite.client.CompositeClient"},
                    "description": "root",
                    "methods_description": {"on": "Power on", "off": "Power off"},
                },
                {"uuid": UUID_B, "parent_uuid": UUID_A, "labels": {"jumpstarter.dev/name": "power"}},
            ],
            "alternative_endpoints": [
                {"endpoint": "host:1", "certificate": "C", "client_certificate": "CC", "client_private_key": "K"}
            ],
        },
    ),
    "instance_with_empty_optionals": ("DriverInstanceReport", {"uuid": UUID_B, "parent_uuid": "", "description": ""}),
    "endpoint": (
        "Endpoint",
        {"endpoint": "e", "certificate": "c", "client_certificate": "d", "client_private_key": "k"},
    ),
    "call": ("DriverCallRequest", {"uuid": UUID_B, "method": "m", "args": [None, 1.5, -3, "s", True, {"k": [1]}, []]}),
    "call_result": ("DriverCallResponse", {"uuid": UUID_A, "result": {"a": [1, "x", None], "b": {}}}),
    "call_null_result": ("DriverCallResponse", {"uuid": UUID_A, "result": None}),
    "streaming_call": ("StreamingDriverCallRequest", {"uuid": UUID_B, "method": "read", "args": [2.0]}),
    "streaming_result": ("StreamingDriverCallResponse", {"uuid": UUID_A, "result": [0.5, "y"]}),
    "log_unspecified_source": (
        "LogStreamResponse",
        {"uuid": "", "severity": "INFO", "message": "m", "source": "LOG_SOURCE_UNSPECIFIED"},
    ),
    "log_driver": ("LogStreamResponse", {"severity": "WARNING", "message": "w", "source": "LOG_SOURCE_DRIVER"}),
    "log_without_source": ("LogStreamResponse", {"severity": "ERROR", "message": "e"}),
    "reset_request": ("ResetRequest", {}),
    "reset_response": ("ResetResponse", {}),
    "status_request": ("GetStatusRequest", {}),
    "status": (
        "GetStatusResponse",
        {
            "status": "EXPORTER_STATUS_LEASE_READY",
            "message": "",
            "status_version": "18446744073709551615",
            "previous_status": "EXPORTER_STATUS_UNSPECIFIED",
        },
    ),
    "status_without_optionals": ("GetStatusResponse", {"status": "EXPORTER_STATUS_AVAILABLE", "status_version": "1"}),
    "end_request": ("EndSessionRequest", {}),
    "end_response": ("EndSessionResponse", {"success": False, "message": ""}),
    "end_response_without_message": ("EndSessionResponse", {"success": True}),
    "stream_goaway": ("StreamRequest", {"payload": "", "frame_type": "FRAME_TYPE_GOAWAY"}),
    "stream_data": ("StreamResponse", {"payload": "AAEC/w=="}),
    "stream_ping": ("StreamResponse", {"frame_type": "FRAME_TYPE_PING"}),
}

# Our extra fields on top of a sample: the original must parse the rest as if they were absent.
EXTRAS: dict[str, tuple[str, dict[str, Any]]] = {
    "report": ("report", {"motd": "welcome", "capabilities": ["typed-values"]}),
    "call": ("call", {"typed_args": {"args": [{"int_value": "5"}, {"bytes_value": "AP8="}]}}),
    "call_result": ("call_result", {"typed_result": {"big_int_value": "123456789012345678901234567890"}}),
    "streaming_result": ("streaming_result", {"typed_results": [{"float_value": 1.5}, {"string_value": "s"}]}),
    "log_driver": (
        "log_driver",
        {
            "driver_type": "power",
            "operation": "on",
            "timestamp": "2024-01-02T03:04:05Z",
            "structured_fields": {"k": "v"},
        },
    ),
}


def ours(type_name: str) -> type[Message]:
    return message_factory.GetMessageClass(descriptor_pool.Default().FindMessageTypeByName(f"{V1}.{type_name}"))


def build(type_name: str, data: dict[str, Any]) -> Message:
    return json_format.ParseDict(data, ours(type_name)())


def as_json(message: Message) -> Any:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def with_extras(key: str) -> Message:
    base, extra = EXTRAS[key]
    type_name, data = SAMPLES[base]
    return build(type_name, {**data, **extra})


@pytest.fixture(scope="module")
def original(upstream: Any) -> dict[str, Any]:
    """The original's descriptors, its serialization of SAMPLES, and how it parses ours."""
    request_ours = {
        **{
            f"sample-{key}": {"type": f"{V1}.{type_name}", "hex": build(type_name, data).SerializeToString().hex()}
            for key, (type_name, data) in SAMPLES.items()
        },
        **{
            f"extra-{key}": {
                "type": f"{V1}.{SAMPLES[base][0]}",
                "hex": with_extras(key).SerializeToString(deterministic=True).hex(),
            }
            for key, (base, _) in EXTRAS.items()
        },
    }
    return upstream.run(
        "peer_protocol.py",
        {
            "samples": {key: {"type": f"{V1}.{type_name}", "json": data} for key, (type_name, data) in SAMPLES.items()},
            "ours": request_ours,
        },
    )


@pytest.fixture(scope="module")
def our_descriptors() -> dict[str, Any]:
    return protodump.describe_files(
        jumpstarter_pb2.DESCRIPTOR,
        router_pb2.DESCRIPTOR,
        common_pb2.DESCRIPTOR,
        kubernetes_pb2.DESCRIPTOR,
        client_pb2.DESCRIPTOR,
    )


def with_map_entries(original: dict[str, Any], name: str) -> list[str]:
    """`name` and the map entry types nested in it, as the original declares them."""
    return [name, *(nested for nested in original["descriptors"]["messages"] if nested.startswith(name + "."))]


# -- S1: descriptors -------------------------------------------------------------------------


@pytest.mark.parametrize("name", SESSION_MESSAGES)
def test_every_original_field_exists_in_ours_identically(
    original: dict[str, Any], our_descriptors: dict[str, Any], name: str
) -> None:
    for message in with_map_entries(original, name):
        theirs = original["descriptors"]["messages"][message]
        mine = our_descriptors["messages"].get(message)
        assert mine is not None, f"{message} is missing from our protocol"
        assert {number: mine.get(number) for number in theirs} == theirs, message


@pytest.mark.parametrize("name", SESSION_MESSAGES)
def test_our_extra_fields_are_post_0_9_0_or_our_own_range(
    original: dict[str, Any], our_descriptors: dict[str, Any], name: str
) -> None:
    for message in with_map_entries(original, name):
        theirs = original["descriptors"]["messages"][message]
        for number, field in our_descriptors["messages"][message].items():
            if number in theirs or int(number) >= OWN_EXTENSIONS_FROM:
                continue
            assert (message, int(number)) in POST_0_9_0_FIELDS, f"{message} field {number} is neither 0.9.0 nor spec"
            assert field == POST_0_9_0_FIELDS[message, int(number)]


@pytest.mark.parametrize("name", ENUMS)
def test_enums_have_the_original_values(original: dict[str, Any], our_descriptors: dict[str, Any], name: str) -> None:
    theirs = original["descriptors"]["enums"][name]
    assert {value: our_descriptors["enums"][name].get(value) for value in theirs} == theirs


# -- S2: services ----------------------------------------------------------------------------


def test_method_paths_and_streaming_flags(original: dict[str, Any], our_descriptors: dict[str, Any]) -> None:
    theirs = {
        path: method for path, method in original["descriptors"]["methods"].items() if path.startswith(SERVICE_PATHS)
    }
    assert len(theirs) == 8  # 7 ExporterService RPCs and RouterService.Stream
    assert {path: our_descriptors["methods"].get(path) for path in theirs} == theirs


# -- S3: golden bytes ------------------------------------------------------------------------


@pytest.mark.parametrize("key", SAMPLES)
def test_same_message_serializes_to_the_same_bytes(original: dict[str, Any], key: str) -> None:
    type_name, data = SAMPLES[key]
    assert build(type_name, data).SerializeToString(deterministic=True).hex() == original["theirs"][key]


@pytest.mark.parametrize("key", SAMPLES)
def test_original_parses_our_bytes_field_by_field(original: dict[str, Any], key: str) -> None:
    type_name, data = SAMPLES[key]
    # The JSON form shows every set field, and optional fields exactly when present (HasField).
    assert original["parsed"][f"sample-{key}"]["json"] == as_json(build(type_name, data))


@pytest.mark.parametrize("key", SAMPLES)
def test_we_parse_the_originals_bytes_field_by_field(original: dict[str, Any], key: str) -> None:
    type_name, data = SAMPLES[key]
    parsed = ours(type_name).FromString(bytes.fromhex(original["theirs"][key]))
    assert as_json(parsed) == as_json(build(type_name, data))
    assert parsed == build(type_name, data)


def test_explicit_presence_survives_both_ways(original: dict[str, Any]) -> None:
    # Defaults that are set on purpose must travel (spec 1.4): both sides see them as present.
    report = ours("DriverInstanceReport").FromString(bytes.fromhex(original["theirs"]["instance_with_empty_optionals"]))
    assert report.HasField("parent_uuid") and report.HasField("description")
    log = ours("LogStreamResponse").FromString(bytes.fromhex(original["theirs"]["log_unspecified_source"]))
    assert log.HasField("source")
    assert original["parsed"]["sample-log_unspecified_source"]["json"]["source"] == "LOG_SOURCE_UNSPECIFIED"
    assert "source" not in original["parsed"]["sample-log_without_source"]["json"]
    assert original["parsed"]["sample-status"]["json"]["previous_status"] == "EXPORTER_STATUS_UNSPECIFIED"
    assert "previous_status" not in original["parsed"]["sample-status_without_optionals"]["json"]


@pytest.mark.parametrize("key", EXTRAS)
def test_original_skips_our_extra_fields(original: dict[str, Any], key: str) -> None:
    base = EXTRAS[key][0]
    type_name, data = SAMPLES[base]
    parsed = original["parsed"][f"extra-{key}"]
    assert parsed["json"] == as_json(build(type_name, data))
    # Kept as unknown fields: a message the original passes on still carries them.
    assert ours(type_name).FromString(bytes.fromhex(parsed["hex"])) == with_extras(key)


# -- The lab controller's protocol (ControllerService, ClientService, kubernetes.proto) ------

CONTROLLER_SERVICE_PATHS = (f"/{V1}.ControllerService/", "/jumpstarter.client.v1.ClientService/")
# Fields the spec lists as post-0.9.0 (served to 0.9.0 peers, which skip them).
CONTROLLER_POST_0_9_0 = {("jumpstarter.v1.StatusResponse", 4), ("jumpstarter.client.v1.Lease", 15)}


def controller_messages(original: dict[str, Any]) -> list[str]:
    session = set(SESSION_MESSAGES)
    return [
        name
        for name in original["descriptors"]["messages"]
        if name.split(".", 2)[-1].split(".")[0] not in {m.rsplit(".", 1)[-1] for m in session}
        and name.startswith(("jumpstarter.v1.", "jumpstarter.client.v1."))
        and "TypedValue" not in name
    ]


def test_every_original_controller_message_exists_in_ours_identically(
    original: dict[str, Any], our_descriptors: dict[str, Any]
) -> None:
    names = controller_messages(original)
    assert "jumpstarter.client.v1.Lease" in names and "jumpstarter.v1.Condition" in names
    for message in names:
        theirs = original["descriptors"]["messages"][message]
        mine = our_descriptors["messages"].get(message)
        assert mine is not None, f"{message} is missing from our protocol"
        assert {number: mine.get(number) for number in theirs} == theirs, message
        extra = {(message, int(number)) for number in mine if number not in theirs}
        assert extra <= CONTROLLER_POST_0_9_0, f"{message} has fields 0.9.0 lacks: {sorted(extra)}"


def test_controller_method_paths_and_streaming_flags(original: dict[str, Any], our_descriptors: dict[str, Any]) -> None:
    theirs = {
        path: method
        for path, method in original["descriptors"]["methods"].items()
        if path.startswith(CONTROLLER_SERVICE_PATHS)
    }
    assert len(theirs) == 19  # 11 ControllerService RPCs (AuditStream included) and 8 ClientService RPCs
    assert {path: our_descriptors["methods"].get(path) for path in theirs} == theirs
