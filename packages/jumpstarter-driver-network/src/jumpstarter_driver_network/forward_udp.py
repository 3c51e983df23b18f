"""A UDP port forward: a local UDP port relayed, datagram by datagram, to a UdpNetwork driver.

UDP has no connections, so the forward makes one per local peer (its address and port):
the first datagram from a peer opens a stream to the driver, which carries that peer's
datagrams to the target and the target's answers back to that peer only. A stream that
carries nothing either way for `idle_timeout` seconds is closed; the peer's next datagram
opens a new one. Datagrams keep their boundaries all the way.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio
from anyio import BrokenResourceError, ClosedResourceError, WouldBlock
from anyio.abc import ObjectStream, TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from jumpstarter.common import background_tasks
from jumpstarter_driver_network.addresses import join_host_port

# Opens a new datagram stream to the driver (the client's `datagrams_async()`).
OpenDatagrams = Callable[[], AbstractAsyncContextManager[ObjectStream[bytes]]]

# Datagrams from one local peer waiting for its stream; more are dropped, as a network would.
QUEUED_DATAGRAMS = 256


@asynccontextmanager
async def serve_udp(
    open_datagrams: OpenDatagrams, *, host: str, port: int, idle_timeout: float, logger: logging.Logger
) -> AsyncIterator[tuple[str, int]]:
    """Listen on UDP `host`:`port` (0: a free port); yield the bound (host, port)."""
    local = await _LocalUdp.bind(host, port)
    forward = _UdpForward(local, open_datagrams, idle_timeout, logger)
    # Leaving the body cancels the tasks; an exception of the body propagates as itself.
    async with local, background_tasks() as tasks:
        tasks.start_soon(forward.receive_local, tasks)
        logger.debug("forwarding %s", forward.name)
        yield local.address


class _UdpForward:
    def __init__(self, local: _LocalUdp, open_datagrams: OpenDatagrams, idle_timeout: float, logger: logging.Logger):
        self.local = local
        self.open_datagrams = open_datagrams
        self.idle_timeout = idle_timeout
        self.logger = logger
        self.name = "UDP " + join_host_port(*local.address)
        self.peers: dict[Any, MemoryObjectSendStream[bytes]] = {}

    async def receive_local(self, tasks: TaskGroup) -> None:
        """Hand each local datagram to its peer's stream, opening one for a new peer."""
        while True:
            datagram, peer = await self.local.receive()
            queue = self.peers.get(peer)
            if queue is None:
                queue, queued = anyio.create_memory_object_stream[bytes](QUEUED_DATAGRAMS)
                self.peers[peer] = queue
                tasks.start_soon(self.serve_peer, peer, queued)
            try:
                queue.send_nowait(datagram)
            except WouldBlock:
                self.logger.debug("forward %s: dropped a datagram of %s: its stream lags", self.name, peer)
            except (BrokenResourceError, ClosedResourceError):
                pass  # the peer's stream just ended: as if the datagram were lost on the way

    async def serve_peer(self, peer: Any, queued: MemoryObjectReceiveStream[bytes]) -> None:
        """Relay one local peer's datagrams until its stream has been idle for `idle_timeout`."""
        # Pushed back by every datagram, either way: the stream ends once it passes.
        idle = anyio.CancelScope(deadline=anyio.current_time() + self.idle_timeout)

        def traffic() -> None:
            idle.deadline = anyio.current_time() + self.idle_timeout

        async def to_driver(remote: ObjectStream[bytes]) -> None:
            async for datagram in queued:
                traffic()
                await remote.send(datagram)

        async def to_peer(remote: ObjectStream[bytes]) -> None:
            while True:
                datagram = await remote.receive()
                traffic()
                await self.local.send(datagram, peer)

        try:
            with queued:
                async with self.open_datagrams() as remote, anyio.create_task_group() as copies:
                    copies.start_soon(to_driver, remote)
                    copies.start_soon(to_peer, remote)
                    with idle:
                        await anyio.sleep_forever()
                    self.logger.debug("forward %s: closing the idle stream of %s", self.name, peer)
                    copies.cancel_scope.cancel()
        except Exception as error:
            cause: BaseException = error
            while isinstance(cause, BaseExceptionGroup) and cause.exceptions:
                cause = cause.exceptions[0]
            self.logger.warning("forward %s: the datagrams of %s: %s", self.name, peer, str(cause) or repr(cause))
        finally:
            # Datagrams queued meanwhile are lost, as on a network; the next one opens a new stream.
            queue = self.peers.pop(peer, None)
            if queue is not None:
                queue.close()


class _LocalUdp:
    """The forward's local UDP socket, used directly: answers go to the peer each stream belongs to."""

    def __init__(self, udp: socket.socket) -> None:
        self._udp = udp
        host, port = udp.getsockname()[:2]
        self.address = (str(host), int(port))
        self._sending = anyio.Lock()  # one task at a time waits for room to send

    @classmethod
    async def bind(cls, host: str, port: int) -> _LocalUdp:
        family, kind, proto, _, address = (
            await anyio.getaddrinfo(host, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE)
        )[0]
        udp = socket.socket(family, kind, proto)
        try:
            udp.setblocking(False)
            udp.bind(address)
        except BaseException:
            udp.close()
            raise
        return cls(udp)

    async def receive(self) -> tuple[bytes, Any]:
        while True:
            try:
                datagram, peer = self._udp.recvfrom(1 << 16)
            except BlockingIOError:
                await anyio.wait_readable(self._udp)
            except ConnectionRefusedError:
                continue  # a local peer that went away: what was sent to it is lost
            else:
                return datagram, peer[:2]

    async def send(self, datagram: bytes, peer: Any) -> None:
        async with self._sending:
            while True:
                try:
                    self._udp.sendto(datagram, peer)
                    return
                except BlockingIOError:
                    await anyio.wait_writable(self._udp)
                except OSError:
                    return  # as on a network: the datagram is lost

    async def __aenter__(self) -> _LocalUdp:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        anyio.notify_closing(self._udp)
        self._udp.close()
