"""Client side of jumpstarter: `DriverClient`, connecting to exporters, and the errors driver calls raise."""

from jumpstarter.client.base import DriverClient, StubDriverClient
from jumpstarter.client.blocking import BlockingStream
from jumpstarter.client.composite import CompositeClient
from jumpstarter.client.connect import connect, connect_async
from jumpstarter.client.environment import env, env_async
from jumpstarter.common.exceptions import (
    DriverClientUnavailable,
    DriverConnectionError,
    DriverError,
    DriverInvalidArgument,
    DriverMethodNotImplemented,
    DriverTimeout,
    ExporterConnectionLost,
    ExporterNotReady,
)

__all__ = [
    "BlockingStream",
    "CompositeClient",
    "DriverClient",
    "DriverClientUnavailable",
    "DriverConnectionError",
    "DriverError",
    "DriverInvalidArgument",
    "DriverMethodNotImplemented",
    "DriverTimeout",
    "ExporterConnectionLost",
    "ExporterNotReady",
    "StubDriverClient",
    "connect",
    "connect_async",
    "env",
    "env_async",
]
