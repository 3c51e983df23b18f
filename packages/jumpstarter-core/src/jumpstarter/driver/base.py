"""The `Driver` base class."""

from __future__ import annotations

import logging
from abc import ABCMeta, abstractmethod
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

if TYPE_CHECKING:
    from anyio.abc import AnyByteStream

DRIVER_LOGGER_PREFIX = "jumpstarter.drivers"


@dataclass(kw_only=True)
class Driver(metaclass=ABCMeta):
    """Base class for drivers.

    A driver runs next to the hardware. Subclasses implement `client()` and mark the
    methods a client may call with `@export` (calls and generators) or `@exportstream`
    (byte streams). Configuration fields are declared as dataclass fields:

        @dataclass(kw_only=True)
        class MyPower(PowerInterface, Driver):
            port: int

    Drivers with children (`children`) form a tree that an exporter serves as one unit.
    """

    uuid: UUID = field(default_factory=uuid4)
    labels: dict[str, str] = field(default_factory=dict)
    children: dict[str, Driver] = field(default_factory=dict)
    log_level: str = "INFO"
    description: str | None = None
    """Help text for the driver, shown by command-line clients."""
    methods_description: dict[str, str] = field(default_factory=dict)
    """Help texts of the commands of command-line clients (``j``), by method name, instead of their docstrings."""

    logger: logging.Logger = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.logger = logging.getLogger(f"{DRIVER_LOGGER_PREFIX}.{type(self).__name__}")
        self.logger.setLevel(self.log_level)

    @classmethod
    @abstractmethod
    def client(cls) -> str:
        """Return the full import path of the driver client class, e.g. ``"mypkg.client.MyClient"``."""

    def close(self) -> None:  # noqa: B027 - an optional hook
        """Release the hardware; called once, in a worker thread, when the session serving it ends.

        The session closes every driver of its tree itself, children before their parents,
        each once even if it appears under two names: a driver closes only what it holds.
        """

    def reset(self) -> None:  # noqa: B027 - an optional hook
        """Bring the hardware to a known state; called once, in a worker thread, when a session starts.

        The session resets every driver of its tree itself, parents before their children.
        """

    def extra_labels(self) -> dict[str, str]:
        """Labels computed at report time, merged over `labels`."""
        return {}

    @asynccontextmanager
    async def resource(self, handle: Any) -> AsyncIterator[AnyByteStream]:
        """Open the client resource a driver call received as an argument.

        Yields an anyio stream of bytes (`anyio.abc.AnyByteStream`): `receive()` reads the
        bytes the client sends (decompressed if the client declared an encoding) and `send()`
        writes bytes back to the client.
        A handle can be used once, and only on the driver it was made for.
        """
        from jumpstarter.driver._resources import open_resource  # anyio streams: loaded when needed

        async with open_resource(self, handle) as stream:
            yield stream
