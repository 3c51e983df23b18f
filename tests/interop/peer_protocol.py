"""The ORIGINAL jumpstarter 0.9.0 protocol modules, for the static conformance checks.

Run with the original's python. Reads a JSON request on stdin:

    {"samples": {id: {"type": full message name, "json": JSON form}},
     "ours": {id: {"type": full message name, "hex": bytes serialized by our implementation}}}

and prints one JSON object:

    {"descriptors": protodump.describe_files(...) of jumpstarter.proto, router.proto, common.proto,
     kubernetes.proto and client/v1/client.proto,
     "theirs": {id: hex of the sample built and serialized (deterministically) by the original},
     "parsed": {id: {"json": the original's JSON form of our bytes, "hex": them re-serialized}}}
"""

from __future__ import annotations

import json
import sys
from typing import Any

from google.protobuf import descriptor_pool, json_format, message_factory
from jumpstarter_protocol import jumpstarter_pb2, router_pb2
from jumpstarter_protocol.jumpstarter.client.v1 import client_pb2
from jumpstarter_protocol.jumpstarter.v1 import common_pb2, kubernetes_pb2
from peer_io import send, take_stdout
from protodump import describe_files


def message_class(full_name: str) -> Any:
    return message_factory.GetMessageClass(descriptor_pool.Default().FindMessageTypeByName(full_name))


def as_json(message: Any) -> Any:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def main() -> None:
    answer = take_stdout()
    request = json.load(sys.stdin)
    theirs = {}
    for key, sample in request["samples"].items():
        message = json_format.ParseDict(sample["json"], message_class(sample["type"])())
        theirs[key] = message.SerializeToString(deterministic=True).hex()
    parsed = {}
    for key, ours in request["ours"].items():
        message = message_class(ours["type"]).FromString(bytes.fromhex(ours["hex"]))
        parsed[key] = {"json": as_json(message), "hex": message.SerializeToString(deterministic=True).hex()}
    send(
        answer,
        {
            "descriptors": describe_files(
                jumpstarter_pb2.DESCRIPTOR,
                router_pb2.DESCRIPTOR,
                common_pb2.DESCRIPTOR,
                kubernetes_pb2.DESCRIPTOR,
                client_pb2.DESCRIPTOR,
            ),
            "theirs": theirs,
            "parsed": parsed,
        },
    )


if __name__ == "__main__":
    main()
