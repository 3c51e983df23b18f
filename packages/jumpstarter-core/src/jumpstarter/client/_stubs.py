"""The client's stubs of the exporter's services, made from the services' descriptors.

They make the same calls as the generated stubs (`jumpstarter.v1.*_pb2_grpc`): each method's
path, request serializer and response parser come from the service's descriptor, compiled
from the same ``.proto``, except that driver calls take their requests encoded already. The
generated modules also hold the exporter's servicers and more (900 lines for
`jumpstarter_pb2_grpc`), which a client would compile for a few methods on each start where
Python cannot write bytecode (`j power on` in a container).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message_factory import GetMessageClass

from jumpstarter.common.wire import parse_result
from jumpstarter.v1 import jumpstarter_pb2, router_pb2

EXPORTER_SERVICE = jumpstarter_pb2.DESCRIPTOR.services_by_name["ExporterService"]
ROUTER_SERVICE = router_pb2.DESCRIPTOR.services_by_name["RouterService"]

# Driver calls leave encoded by `jumpstarter.common.wire.encode_call` (which checks their size on
# the bytes it makes), and DriverCall's responses are parsed by `parse_result`.
_ENCODED_REQUESTS = {
    "/jumpstarter.v1.ExporterService/DriverCall",
    "/jumpstarter.v1.ExporterService/StreamingDriverCall",
}
_RESPONSE_PARSERS = {"/jumpstarter.v1.ExporterService/DriverCall": parse_result}

# The channel's factory for each (client streaming, server streaming).
_FACTORIES = {
    (False, False): "unary_unary",
    (False, True): "unary_stream",
    (True, False): "stream_unary",
    (True, True): "stream_stream",
}


def stub(channel: Any, service: ServiceDescriptor) -> Any:
    """A stub of `service` on `channel` (blocking or asyncio): one attribute per method, as generated."""
    methods = {}
    for method in service.methods:
        factory = getattr(channel, _FACTORIES[method.client_streaming, method.server_streaming])
        path = f"/{service.full_name}/{method.name}"
        methods[method.name] = factory(
            path,
            request_serializer=None
            if path in _ENCODED_REQUESTS
            else GetMessageClass(method.input_type).SerializeToString,
            response_deserializer=_RESPONSE_PARSERS.get(path, GetMessageClass(method.output_type).FromString),
            _registered_method=True,
        )
    return SimpleNamespace(**methods)
