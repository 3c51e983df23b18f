"""From a call on the wire to a driver method: lookup, argument checks, execution.

Only methods marked with `@export`/`@exportstream` are reachable. Arguments are bound to
the method's signature (a wrong count or an unknown keyword is rejected before the method
runs) and validated against its annotations with pydantic, so a parameter annotated
`int` gets an int even from a peer that sends every number as a float, and one annotated
with a pydantic model or dataclass gets an instance of it.
"""

from __future__ import annotations

import asyncio
import difflib
import functools
import inspect
import logging
import typing
from collections.abc import AsyncIterator, Callable, Hashable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import grpc
from google.protobuf.message import Message

from jumpstarter.common.tasks import background_tasks
from jumpstarter.common.wire import CallRefused
from jumpstarter.driver.base import Driver
from jumpstarter.driver.decorators import CallKind, ExportedMethod, exported_methods
from jumpstarter.exporter._containment import EXITS, exit_as_error
from jumpstarter.exporter._workers import WorkerThreads
from jumpstarter.streams.channel import ThreadChannel

logger = logging.getLogger(__name__)

# Encoded bytes a generator may run ahead of a slow client, per streaming call.
STREAMING_BACKLOG_BYTES = 2 << 20
# Each encoded item also costs memory beyond its bytes: count this much more per item.
_ITEM_OVERHEAD = 64


def lookup(driver: Driver, name: str, kind: CallKind) -> ExportedMethod:
    """The exported method `name` of `driver`, callable as `kind`; CallRefused says why not."""
    methods = exported_methods(type(driver))
    method = methods.get(name)
    driver_name = type(driver).__name__
    if method is None:
        if name.startswith("_"):
            reason = f"{driver_name}.{name} is private; only methods marked with @export can be called"
        elif hasattr(type(driver), name):
            reason = f"{driver_name}.{name} is not exported; only methods marked with @export can be called"
        else:
            reason = f"{driver_name} has no exported method {name!r}"
            close = difflib.get_close_matches(name, methods, n=3)
            if close:
                reason += " (did you mean " + " or ".join(repr(c) for c in close) + "?)"
        raise CallRefused(grpc.StatusCode.NOT_FOUND, reason)
    if method.kind is not kind:
        raise CallRefused(
            grpc.StatusCode.NOT_FOUND,
            f"{driver_name}.{name} is a {method.kind.value}: use {method.kind.client_method}, not {kind.client_method}",
        )
    return method


# -- arguments -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Parameters:
    signature: inspect.Signature
    # Validators of the annotated parameters, built on first use (they need pydantic).
    validators: dict[str, Callable[[Any], Any]]
    var_positional: str | None
    var_keyword: str | None
    # How many arguments the method takes, when it takes exactly that many by position with
    # nothing to validate: such calls skip Signature.bind (the common case, on every call).
    plain_positional: int | None


@functools.cache
def _parameters(function: Callable[..., Any]) -> _Parameters:
    signature = inspect.signature(function)
    try:
        hints = typing.get_type_hints(function, include_extras=True)
    except Exception:  # an annotation that names something undefined at run time
        hints = {}
    validators = {}
    for index, parameter in enumerate(signature.parameters.values()):
        if index == 0:  # self
            continue
        annotation = hints.get(parameter.name, parameter.annotation)
        if annotation in (inspect.Parameter.empty, Any, object) or isinstance(annotation, str):
            continue
        validator = _validator(annotation)
        if validator is not None:
            validators[parameter.name] = validator
    kinds = {p.kind: p.name for p in signature.parameters.values()}
    rest = list(signature.parameters.values())[1:]
    plain = not validators and all(
        p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        and p.default is inspect.Parameter.empty
        for p in rest
    )
    return _Parameters(
        signature=signature,
        validators=validators,
        var_positional=kinds.get(inspect.Parameter.VAR_POSITIONAL),
        var_keyword=kinds.get(inspect.Parameter.VAR_KEYWORD),
        plain_positional=len(rest) if plain and signature.parameters else None,
    )


def _validator(annotation: Any) -> Callable[[Any], Any] | None:
    from pydantic import TypeAdapter

    try:
        return TypeAdapter(annotation).validate_python
    except Exception as error:  # a type pydantic cannot validate: pass values through unchanged
        logger.debug("arguments annotated %r are not validated: %s", annotation, error)
        return None


def bind_arguments(
    method: ExportedMethod, driver: Driver, args: list[Any], kwargs: dict[str, Any]
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Check the arguments against the method's signature; return them converted to its annotations."""
    parameters = _parameters(method.function)
    if not kwargs and len(args) == parameters.plain_positional:
        return tuple(args), {}
    try:
        bound = parameters.signature.bind(driver, *args, **kwargs)
    except TypeError as error:
        raise CallRefused(grpc.StatusCode.INVALID_ARGUMENT, f"{method.name}(): {error}") from None
    for name, validate in parameters.validators.items():
        if name not in bound.arguments:
            continue
        value = bound.arguments[name]
        if name == parameters.var_positional:
            bound.arguments[name] = tuple(_validate(method, name, validate, item) for item in value)
        elif name == parameters.var_keyword:
            bound.arguments[name] = {key: _validate(method, key, validate, item) for key, item in value.items()}
        else:
            bound.arguments[name] = _validate(method, name, validate, value)
    return bound.args[1:], bound.kwargs


def _validate(method: ExportedMethod, name: str, validate: Callable[[Any], Any], value: Any) -> Any:
    from pydantic import ValidationError

    try:
        return validate(value)
    except ValidationError as error:
        problem = error.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        text = repr(value)
        if len(text) > 80:
            text = text[:77] + "..."
        raise CallRefused(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{method.name}(): invalid argument {name!r}{' at ' + where if where else ''}: "
            f"{problem['msg']} (got {text})",
        ) from None


# -- running driver code ---------------------------------------------------------------


async def call_unary(
    method: ExportedMethod,
    driver: Driver,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    workers: WorkerThreads,
    caller: Hashable = None,
) -> Any:
    # exits_contained(), spelled out: this is the path of every call.
    try:
        if method.is_async:
            return await method.function(driver, *args, **kwargs)
        return await workers.start(method.function, (driver, *args), kwargs, caller=caller, label=(driver, method.name))
    except EXITS as error:
        raise exit_as_error(error) from error


@asynccontextmanager
async def iterate_streaming(
    method: ExportedMethod,
    driver: Driver,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    workers: WorkerThreads,
    encode: Callable[[Any], Message],
    caller: Hashable = None,
) -> AsyncIterator[ThreadChannel[Message]]:
    """Run a generator method; yield a channel of its items, each already encoded with `encode`.

    The generator runs ahead of the consumer by at most STREAMING_BACKLOG_BYTES of encoded
    items, so the consumer can send what is ready in batches while memory stays bounded.
    A sync generator's items are encoded in its worker thread, off the event loop.
    On exit the generator is closed promptly (its `finally` blocks run): an async generator
    at its current await, a sync generator as soon as its current item is produced.
    """
    channel: ThreadChannel[Message] = ThreadChannel(
        asyncio.get_running_loop(), STREAMING_BACKLOG_BYTES, lambda message: message.ByteSize() + _ITEM_OVERHEAD
    )
    if method.is_async:
        try:
            async with background_tasks() as tasks:
                tasks.start_soon(_produce_async, method.function(driver, *args, **kwargs), channel, encode)
                yield channel
        finally:
            channel.abort()
    else:
        # Calling a generator function runs none of its code, so this is safe on the loop.
        generator = method.function(driver, *args, **kwargs)
        producer = workers.start(
            _produce_sync, (generator, channel, encode), caller=caller, label=(driver, method.name)
        )
        try:
            yield channel
        finally:
            channel.abort()
            # Not awaited: a generator blocked in hardware I/O finishes its item first. The
            # session waits for every worker thread before it closes the drivers.
            producer.add_done_callback(_log_producer_failure)


async def _produce_async(generator: Any, channel: ThreadChannel[Message], encode: Callable[[Any], Message]) -> None:
    error = None
    try:
        async for item in generator:
            await channel.aput(encode(item))
    except anyio.BrokenResourceError:  # the consumer went away
        pass
    except Exception as exception:
        error = exception
    except EXITS as exception:
        error = exit_as_error(exception)
    finally:
        try:
            with anyio.CancelScope(shield=True):
                await generator.aclose()
        finally:
            channel.finish(error)
            # The error's traceback holds this frame: a reference back to it would be a cycle.
            error = None


def _produce_sync(generator: Iterator[Any], channel: ThreadChannel[Message], encode: Callable[[Any], Message]) -> None:
    error = None
    try:
        for item in generator:
            channel.put(encode(item))
    except anyio.BrokenResourceError:  # the consumer went away
        pass
    except Exception as exception:
        error = exception
    except EXITS as exception:
        error = exit_as_error(exception)
    finally:
        try:
            generator.close()  # type: ignore[attr-defined]
        finally:
            channel.finish(error)
            # The error's traceback holds this frame: a reference back to it would be a cycle.
            error = None


def _log_producer_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.error("closing a streaming driver call failed", exc_info=future.exception())
