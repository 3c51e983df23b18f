"""Client side of jumpstarter: `DriverClient`, connecting to exporters, and the errors driver calls raise.

The modules of this package are internal: import from here (see the public API reference
in the documentation).
"""

from typing import TYPE_CHECKING, Any

from jumpstarter.client.base import DriverClient, StubDriverClient
from jumpstarter.client.classes import ClientClassPolicy
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
    "HookFailed",
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

if TYPE_CHECKING:
    from jumpstarter.client.blocking import BlockingStream
    from jumpstarter.client.lab import LabError
    from jumpstarter.client.leasing import lease, lease_async
    from jumpstarter.client.readiness import HookFailed

# Leasing needs the client configuration (pydantic), byte streams their own machinery: loaded
# when first used, so that `j` and a driver client's import stay light.
_LAZY = {
    "BlockingStream": "jumpstarter.client.blocking",
    "HookFailed": "jumpstarter.client.readiness",
    "LabError": "jumpstarter.client.lab",
    "lease": "jumpstarter.client.leasing",
    "lease_async": "jumpstarter.client.leasing",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
