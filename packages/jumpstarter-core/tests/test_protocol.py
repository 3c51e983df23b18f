"""The generated protocol modules match the .proto files, and the wire names are jumpstarter.v1's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from jumpstarter.v1 import jumpstarter_pb2, router_pb2

ROOT = Path(__file__).resolve().parents[3]


def test_generated_modules_are_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "generate_protocol.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_method_paths_and_kinds() -> None:
    methods = {}
    for module, service in ((jumpstarter_pb2, "ExporterService"), (router_pb2, "RouterService")):
        descriptor = module.DESCRIPTOR.services_by_name[service]
        for method in descriptor.methods:
            methods[f"/{descriptor.full_name}/{method.name}"] = (method.client_streaming, method.server_streaming)
    assert methods == {
        "/jumpstarter.v1.ExporterService/GetReport": (False, False),
        "/jumpstarter.v1.ExporterService/DriverCall": (False, False),
        "/jumpstarter.v1.ExporterService/StreamingDriverCall": (False, True),
        "/jumpstarter.v1.ExporterService/LogStream": (False, True),
        "/jumpstarter.v1.ExporterService/Reset": (False, False),
        "/jumpstarter.v1.ExporterService/GetStatus": (False, False),
        "/jumpstarter.v1.ExporterService/EndSession": (False, False),
        "/jumpstarter.v1.RouterService/Stream": (True, True),
    }


def test_typed_value_fields_are_beyond_the_original_numbers() -> None:
    # Old peers skip fields they do not know; numbers >= 100 stay clear of upstream's own additions.
    messages = jumpstarter_pb2.DESCRIPTOR.message_types_by_name
    for name in ("DriverCallRequest", "StreamingDriverCallRequest"):
        assert sorted(messages[name].fields_by_number) == [1, 2, 3, 100]
    assert sorted(messages["DriverCallResponse"].fields_by_number) == [1, 2, 100, 101]  # 101: bulk values
    assert sorted(messages["StreamingDriverCallResponse"].fields_by_number) == [1, 2, 100]
    assert 100 in jumpstarter_pb2.GetReportResponse.DESCRIPTOR.fields_by_number
