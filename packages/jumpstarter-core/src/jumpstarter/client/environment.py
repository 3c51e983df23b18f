"""`env()`: the client of the exporter of the `jmp shell` a script runs in.

`jmp shell` sets ``JUMPSTARTER_HOST`` (and the credentials ``JMP_TOKEN``, ``JMP_TLS_CA``,
``JMP_GRPC_INSECURE`` when it needs them) for the commands it runs; `env()` connects to it:

    from jumpstarter.client import env

    with env() as client:
        client.power.on()

Client classes are allowed as `jumpstarter.client.connect` allows them (the installed
driver packages, the client configuration and ``JMP_DRIVERS_ALLOW``, which a local
``jmp shell --exporter-config`` sets to the client classes of the drivers it serves).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING

__all__ = ["endpoint_from_environment", "env", "env_async"]

if TYPE_CHECKING:
    from jumpstarter.client import DriverClient
    from jumpstarter.client.endpoint import ExporterEndpoint


def endpoint_from_environment() -> ExporterEndpoint:
    """The exporter ``jmp shell`` names in the environment.

    Raises LookupError, with what to do, when ``JUMPSTARTER_HOST`` is unset or the
    environment names a CA file that cannot be read.
    """
    from jumpstarter.client.endpoint import ExporterEndpoint
    from jumpstarter.config.env import JMP_TLS_CA

    try:
        return ExporterEndpoint.from_environment()
    except OSError as error:
        raise LookupError(
            f"{JMP_TLS_CA} names {error.filename!r}, which cannot be read: {error.strerror or error}"
        ) from None


@contextmanager
def env(*, allow: Iterable[str] = (), unsafe: bool = False) -> Iterator[DriverClient]:
    """Connect to the exporter of the enclosing ``jmp shell``; yield the root client.

    Raises LookupError when not run inside ``jmp shell`` (``JUMPSTARTER_HOST`` unset) and
    DriverConnectionError when the exporter cannot be reached or refuses the credentials.
    `allow` and `unsafe` widen the allowed client classes, as for `connect`.
    """
    from jumpstarter.client.connect import connect

    with connect(endpoint_from_environment(), allow=allow, unsafe=unsafe) as client:
        yield client


@asynccontextmanager
async def env_async(*, allow: Iterable[str] = (), unsafe: bool = False) -> AsyncIterator[DriverClient]:
    """Async twin of `env`: the client runs on the current event loop (use its async API)."""
    from jumpstarter.client.connect import connect_async

    async with connect_async(endpoint_from_environment(), allow=allow, unsafe=unsafe) as client:
        yield client
