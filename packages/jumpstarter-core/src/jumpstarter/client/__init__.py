"""Client side of jumpstarter: `DriverClient`, connecting to exporters, and the errors driver calls raise.

The modules of this package are internal: import from here (see the public API reference
in the documentation).
"""

from jumpstarter.client.base import DriverClient, StubDriverClient
from jumpstarter.client.blocking import BlockingStream
from jumpstarter.client.classes import ClientClassPolicy
from jumpstarter.client.composite import CompositeClient
from jumpstarter.client.connect import connect, connect_async
from jumpstarter.client.environment import env, env_async
from jumpstarter.client.lab import LabError
from jumpstarter.client.lease import lease, lease_async
from jumpstarter.common.exceptions import (
    DriverClientUnavailable,
    DriverConnectionError,
    DriverError,
    DriverInvalidArgument,
    DriverMethodNotImplemented,
    DriverTimeout,
    ExporterConnectionLost,
    ExporterNotReady,
    JumpstarterException,
)

__all__ = [
    "BlockingStream",
    "ClientClassPolicy",
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
    "JumpstarterException",
    "LabError",
    "StubDriverClient",
    "connect",
    "connect_async",
    "env",
    "env_async",
    "lease",
    "lease_async",
]
