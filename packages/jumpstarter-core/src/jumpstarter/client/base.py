"""`DriverClient`: the client-side counterpart of a driver."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn
from uuid import UUID, uuid4

from jumpstarter.client.text import printable
from jumpstarter.common.exceptions import DriverClientUnavailable
from jumpstarter.common.protocol import NAME_LABEL

if TYPE_CHECKING:
    import click
    import grpc
    from anyio.from_thread import BlockingPortal

    from jumpstarter.client.blocking import BlockingStream
    from jumpstarter.client.classes import UnavailableClass
    from jumpstarter.client.connection import Connection
    from jumpstarter.streams.frames import FrameStream


@dataclass(kw_only=True, eq=False)
class DriverClient:
    """Base class for driver clients.

    A client class wraps the exported methods of its driver in a friendly API, calling
    them with `call` (one result) and `streamingcall` (a generator's items), and opening
    `@exportstream` byte streams with `stream`. Client methods are synchronous; every
    helper has an async twin (`call_async`, `streamingcall_async`, `stream_async`...) for
    async code running on the client's event loop.

    Children are reachable as ``client.children["power"]`` and as attributes
    (``client.power``), unless an attribute of the class has the same name.
    """

    uuid: UUID = field(default_factory=uuid4)
    labels: dict[str, str] = field(default_factory=dict)
    log_level: str = "INFO"
    children: dict[str, DriverClient] = field(default_factory=dict)
    stack: ExitStack
    description: str | None = None
    """The driver's help text, from the exporter's report."""
    methods_description: dict[str, str] = field(default_factory=dict)
    """Help texts of methods, by name, from the exporter's report."""
    connection: Connection = field(repr=False)
    logger: logging.Logger = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.logger = logging.getLogger(f"jumpstarter.clients.{type(self).__name__}")
        # Every client of a class shares its logger; setting a level clears a cache of every logger.
        if logging.getLevelName(self.logger.level) != self.log_level:
            self.logger.setLevel(self.log_level)
        self._uuid = str(self.uuid)

    @property
    def portal(self) -> BlockingPortal:
        """The event loop of the client's async API, run from other threads: ``client.portal.call(...)``.

        A client connected from blocking code starts it (in a thread of its own) on first use.
        """
        return self.connection.portal

    @property
    def channel(self) -> grpc.aio.Channel:
        """The asyncio gRPC channel to the exporter, on the loop of `portal`. Nothing here uses it
        (calls go through `connection`): client classes written for the original jumpstarter read
        it, to make stubs of their own services on the exporter's connection."""
        return self.connection.channel

    @property
    def name(self) -> str:
        """The driver's name in its parent (empty for the root)."""
        return self.labels.get(NAME_LABEL, "")

    # -- calls -----------------------------------------------------------------------

    def call(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        """Call the exported method `method` of the driver and return its result.

        Raises DriverError (or a subclass: DriverInvalidArgument is a ValueError,
        DriverMethodNotImplemented a NotImplementedError, DriverTimeout a TimeoutError...)
        with the driver's message when the call fails.
        """
        return self.connection.call(self._uuid, method, args, kwargs)

    async def call_async(self, method: str, /, *args: Any, **kwargs: Any) -> Any:
        """Async twin of `call`."""
        return await self.connection.call_async(self._uuid, method, args, kwargs)

    def streamingcall(self, method: str, /, *args: Any, **kwargs: Any) -> Generator[Any, None, None]:
        """Call the exported generator method `method`, yielding its items as they come.

        Leaving the loop early (break, an exception, dropping the generator) stops the
        driver's generator.
        """
        yield from self.connection.streamingcall(self._uuid, method, args, kwargs)

    async def streamingcall_async(self, method: str, /, *args: Any, **kwargs: Any) -> AsyncGenerator[Any, None]:
        """Async twin of `streamingcall`."""
        async for item in self.connection.streamingcall_async(self._uuid, method, args, kwargs):
            yield item

    # -- byte streams ----------------------------------------------------------------

    @contextmanager
    def stream(self, method: str = "connect") -> Iterator[BlockingStream]:
        """Open the `@exportstream` method `method` as a blocking byte stream."""
        with self.portal.wrap_async_context_manager(self._blocking_stream(method)) as stream:
            yield stream

    @asynccontextmanager
    async def _blocking_stream(self, method: str) -> AsyncIterator[BlockingStream]:
        # Imported here: with the byte streams' machinery, it is not needed for calls (`j power on`).
        from jumpstarter.client.blocking import blocking_stream

        async with self.stream_async(method) as stream, blocking_stream(stream) as blocking:
            yield blocking

    @asynccontextmanager
    async def stream_async(self, method: str = "connect") -> AsyncIterator[FrameStream]:
        """Async twin of `stream`: an anyio byte stream."""
        async with self.connection.stream_async(self._uuid, method) as stream:
            yield stream

    def open_stream(self, method: str = "connect") -> BlockingStream:
        """Open a byte stream without a context manager; `close()` closes it."""
        return self.stack.enter_context(self.stream(method))

    def close(self) -> None:
        """Close the streams opened with `open_stream`."""
        self.stack.close()

    # -- resources -------------------------------------------------------------------

    @contextmanager
    def resource(self, source: Any, content_encoding: str | None = None) -> Iterator[dict[str, Any]]:
        """Stream bulk data to (or from) the driver beside a call; yield the handle to pass to it.

        `source` is bytes, a path, a binary file (read if readable; written with what the
        driver sends back if writable), an anyio stream or an iterable of bytes.
        `content_encoding` declares the source's compression (gzip, xz, bz2, zstd): the
        exporter decompresses it for the driver. On the driver side, open the handle with
        ``async with self.resource(handle) as stream``.

            with client.resource("firmware.bin") as handle:
                client.call("flash", handle)
        """
        with self.portal.wrap_async_context_manager(self.resource_async(source, content_encoding)) as handle:
            yield handle

    @asynccontextmanager
    async def resource_async(self, source: Any, content_encoding: str | None = None) -> AsyncIterator[dict[str, Any]]:
        """Async twin of `resource`."""
        async with self.connection.resource_async(self._uuid, source, content_encoding) as handle:
            yield handle

    # -- logs ------------------------------------------------------------------------

    @contextmanager
    def log_stream(self) -> Iterator[None]:
        """While open, the exporter's log records are logged here by the loggers ``jumpstarter.remote.*``."""
        with self.portal.wrap_async_context_manager(self.log_stream_async()):
            yield

    @asynccontextmanager
    async def log_stream_async(self) -> AsyncIterator[None]:
        """Async twin of `log_stream`."""
        async with self.connection.log_stream_async():
            yield

    # -- command line ----------------------------------------------------------------

    def cli(self) -> click.Group:
        """This driver's command line, for ``j``: a group with the children's commands.

        Client classes extend it with their own commands (see `jumpstarter.client.cli`).
        """
        from jumpstarter.client.cli import DriverGroup

        group = DriverGroup(self)
        for name, child in self.children.items():
            group.add_command(child.cli(), name=printable(name))
        return group

    # -- children --------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails: fields and methods come first.
        children = self.__dict__.get("children")
        if children is not None and name in children:
            return children[name]
        hint = f"; its children are {', '.join(sorted(children))}" if children else ""
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}{hint}")


@dataclass(kw_only=True, eq=False)
class StubDriverClient(DriverClient):
    """Stands in for a driver whose client class was refused or is not installed.

    Its connection is an `UnavailableConnection`: every call, stream or resource raises
    DriverClientUnavailable with the reason and the fix. Its children, if any, work normally.
    """

    unavailable: UnavailableClass

    def __post_init__(self) -> None:
        super().__post_init__()
        # Duck-typed: it has the methods of a Connection that a client uses.
        self.connection = UnavailableConnection(self.connection, self._fail())  # type: ignore[assignment]

    def _fail(self) -> DriverClientUnavailable:
        what = f"driver {self.name!r}" if self.name else "the root driver"
        path = f" needs the client class {self.unavailable.path}, but" if self.unavailable.path else ":"
        # The name and the class come from the exporter.
        return DriverClientUnavailable(
            printable(f"{what}{path} {self.unavailable.reason}; to fix: {self.unavailable.fix}")
        )

    def cli(self) -> click.Group:
        from jumpstarter.client.cli import UnavailableDriverGroup

        group = UnavailableDriverGroup(self, str(self._fail()))
        for name, child in self.children.items():
            group.add_command(child.cli(), name=printable(name))
        return group

    def __getattr__(self, name: str) -> Any:
        children = self.__dict__.get("children")
        if children is not None and name in children:
            return children[name]
        if name.startswith("__"):
            raise AttributeError(name)
        raise self._fail()


class UnavailableConnection:
    """The connection of a `StubDriverClient`: a driver's calls, streams and resources raise
    the stub's DriverClientUnavailable; the exporter's log stream, which is no driver's, works."""

    def __init__(self, connection: Connection, error: DriverClientUnavailable) -> None:
        self._connection = connection
        self._error = error

    def _fail(self, *args: Any, **kwargs: Any) -> NoReturn:
        # A new exception each time: one raised twice would pile up tracebacks.
        raise DriverClientUnavailable(*self._error.args)

    call = call_async = streamingcall = streamingcall_async = stream_async = resource_async = _fail

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)
