"""Log records of an exporter, delivered to every LogStream consumer."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from jumpstarter.common.protocol import CLIENT_RELAY_LOGGER_PREFIX, LOG_BARRIER_FIELD
from jumpstarter.driver.base import DRIVER_LOGGER_PREFIX
from jumpstarter.exporter.guard import GUARD_LOGGER_NAME
from jumpstarter.streams.channel import ThreadChannel
from jumpstarter.v1 import common_pb2, jumpstarter_pb2

# Records never sent to clients: those a client in this process relays (it would receive
# them again), and refusals of strangers (one client need not know of others, nor of attacks).
_NOT_RELAYED = (CLIENT_RELAY_LOGGER_PREFIX, GUARD_LOGGER_NAME)

# Records a consumer may fall behind by before records are dropped (and it is told so).
CONSUMER_BACKLOG = 1024


# The loggers of the lease hooks' output (`jumpstarter.exporter._hooks`): sent as hook output.
HOOK_LOGGERS = {
    "beforeLease": "jumpstarter.hooks.beforeLease",
    "afterLease": "jumpstarter.hooks.afterLease",
}
_HOOK_SOURCES = {
    HOOK_LOGGERS["beforeLease"]: common_pb2.LOG_SOURCE_BEFORE_LEASE_HOOK,
    HOOK_LOGGERS["afterLease"]: common_pb2.LOG_SOURCE_AFTER_LEASE_HOOK,
}


def source_of(record: logging.LogRecord) -> common_pb2.LogSource:
    if record.name == DRIVER_LOGGER_PREFIX or record.name.startswith(DRIVER_LOGGER_PREFIX + "."):
        return common_pb2.LOG_SOURCE_DRIVER
    return _HOOK_SOURCES.get(record.name, common_pb2.LOG_SOURCE_SYSTEM)


class _Consumer:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.channel: ThreadChannel[jumpstarter_pb2.LogStreamResponse] = ThreadChannel(loop, CONSUMER_BACKLOG)
        self.dropped = 0

    def deliver(self, message: jumpstarter_pb2.LogStreamResponse) -> None:
        if self.dropped:
            notice = jumpstarter_pb2.LogStreamResponse(
                severity="WARNING",
                message=f"{self.dropped} log records were dropped because this client read them too slowly",
                source=common_pb2.LOG_SOURCE_SYSTEM,
            )
            if not self.channel.try_put(notice):
                self.dropped += 1
                return
            self.dropped = 0
        if not self.channel.try_put(message):
            self.dropped += 1


class LogBroadcast(logging.Handler):
    """A logging handler that hands every record to every open consumer.

    Installed on the root logger while a session runs, so records from drivers
    (``self.logger``), from the libraries they use and from the exporter itself are all
    delivered. Emitting never blocks: a consumer that falls behind loses records and gets
    a notice saying how many.

    A consumer that names itself (``jumpstarter-log-consumer`` metadata) can ask for a
    barrier: a marker record queued after every record emitted so far, so that the client
    knows when it has received them all before it closes its stream.
    """

    def __init__(self) -> None:
        super().__init__()
        self._consumers: list[_Consumer] = []
        self._named: dict[str, _Consumer] = {}
        self._consumers_lock = threading.Lock()
        self._formatter = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(_NOT_RELAYED):
            return
        with self._consumers_lock:
            consumers = list(self._consumers)
        if not consumers:
            return
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + self._formatter.formatException(record.exc_info)
            source = source_of(record)
            message = jumpstarter_pb2.LogStreamResponse(severity=record.levelname, message=text, source=source)
            if source == common_pb2.LOG_SOURCE_DRIVER and record.name != DRIVER_LOGGER_PREFIX:
                message.driver_type = record.name[len(DRIVER_LOGGER_PREFIX) + 1 :]
            message.timestamp.FromNanoseconds(int(record.created * 1e9))
        except Exception:
            self.handleError(record)
            return
        for consumer in consumers:
            consumer.deliver(message)

    @contextmanager
    def consume(self, name: str | None = None) -> Iterator[ThreadChannel[jumpstarter_pb2.LogStreamResponse]]:
        """A channel of the records emitted from now until the context exits."""
        consumer = _Consumer(asyncio.get_running_loop())
        with self._consumers_lock:
            self._consumers.append(consumer)
            if name:
                self._named[name] = consumer
        try:
            yield consumer.channel
        finally:
            with self._consumers_lock:
                self._consumers.remove(consumer)
                if name and self._named.get(name) is consumer:
                    del self._named[name]
            consumer.channel.abort()

    def barrier(self, name: str) -> None:
        """Queue the barrier marker for the consumer `name`, after every record emitted so far."""
        with self._consumers_lock:
            consumer = self._named.get(name)
        if consumer is None:
            return
        marker = jumpstarter_pb2.LogStreamResponse(structured_fields={LOG_BARRIER_FIELD: name})
        # The handler's own lock orders the marker after any emit() in progress.
        self.acquire()
        try:
            consumer.channel.try_put(marker, force=True)
        finally:
            self.release()

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Receive the records of every logger (the root logger's handlers) while open."""
        logging.getLogger().addHandler(self)
        try:
            yield
        finally:
            logging.getLogger().removeHandler(self)
