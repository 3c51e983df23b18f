"""What the driver side and the client side share: the errors of driver calls, `background_tasks`,
and Unix sockets (`connect_unix`, `create_unix_listener`).

    from jumpstarter.common import DriverMethodNotImplemented, background_tasks

The errors are the same classes as those `jumpstarter.client` exports; a module imported by
both a driver and its client (an interface's shared errors, say) takes them from here, which
loads no gRPC. The modules under ``jumpstarter.common`` are internal, except the original
jumpstarter's paths kept for its users (``jumpstarter.common.utils``,
``jumpstarter.common.exceptions``) and ``jumpstarter.common.tls`` (certificates); see the
public API reference in the documentation.
"""

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from jumpstarter.common.tasks import background_tasks
    from jumpstarter.common.unix_sockets import connect_unix, create_unix_listener

__all__ = [
    "DriverClientUnavailable",
    "DriverConnectionError",
    "DriverError",
    "DriverInvalidArgument",
    "DriverMethodNotImplemented",
    "DriverTimeout",
    "ExporterConnectionLost",
    "ExporterNotReady",
    "JumpstarterException",
    "background_tasks",
    "connect_unix",
    "create_unix_listener",
]


def __getattr__(name: str) -> Any:
    # These load anyio: a client that only calls from blocking code (`j`) does without.
    if name == "background_tasks":
        from jumpstarter.common.tasks import background_tasks

        return background_tasks
    if name in ("connect_unix", "create_unix_listener"):
        from jumpstarter.common import unix_sockets

        return getattr(unix_sockets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
