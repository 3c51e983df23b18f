"""`@export` and `@exportstream`: what a client may call on a driver.

The decorators only mark functions; `exported_methods` reads the marks. Nothing that
is not marked can be reached over the wire, whatever name a client sends.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import Enum
from functools import cache
from typing import Any, TypeVar, cast

F = TypeVar("F", bound=Callable[..., Any])

_MARK = "__jumpstarter_export__"


class CallKind(Enum):
    """How a client calls an exported method."""

    UNARY = "unary call"  # DriverCall: one result
    STREAMING = "streaming call"  # StreamingDriverCall: a generator's items
    STREAM = "byte stream"  # RouterService.Stream: an @exportstream context manager

    @property
    def client_method(self) -> str:
        return {CallKind.UNARY: "call()", CallKind.STREAMING: "streamingcall()", CallKind.STREAM: "stream()"}[self]


@dataclass(frozen=True)
class ExportedMethod:
    name: str
    kind: CallKind
    function: Callable[..., Any]
    # Async functions and async generators run on the event loop, the others in worker threads.
    is_async: bool


def _check_public(function: Callable[..., Any], decorator: str) -> str:
    name: str | None = getattr(function, "__name__", None)
    if not (inspect.isfunction(function) or inspect.ismethod(function)) or name is None:
        raise TypeError(f"{decorator} decorates methods defined with def or async def, not {function!r}")
    if name.startswith("_"):
        raise TypeError(f"{decorator} cannot export {name!r}: names starting with an underscore stay private")
    return name


def export(function: F) -> F:
    """Export a driver method as a driver call.

    Works on sync and async functions (called with `DriverClient.call`) and on sync and
    async generator functions (called with `DriverClient.streamingcall`). Sync code runs
    in a worker thread, never on the event loop, so it may block on hardware.
    """
    _check_public(function, "@export")
    kind = (
        CallKind.STREAMING
        if inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function)
        else CallKind.UNARY
    )
    setattr(function, _MARK, kind)
    return function


def exportstream(function: F) -> F:
    """Export a driver method as a byte stream (opened with `DriverClient.stream`).

    The method is an async context manager (usually written with
    `contextlib.asynccontextmanager`) that yields an anyio byte stream or object stream
    of bytes. A bare async generator function is wrapped with `asynccontextmanager`.
    """
    _check_public(function, "@exportstream")
    exported: Callable[..., Any] = asynccontextmanager(function) if inspect.isasyncgenfunction(function) else function
    setattr(exported, _MARK, CallKind.STREAM)
    return cast(F, exported)  # the same method, or its asynccontextmanager wrapper (same signature)


@cache
def exported_methods(cls: type) -> dict[str, ExportedMethod]:
    """The exported methods of a driver class, by name (cached per class).

    A subclass that overrides an exported method without `@export` un-exports it: what
    counts is the function the name resolves to on the class.
    """
    methods = {}
    for name in dir(cls):
        if name.startswith("_"):
            continue
        function = inspect.getattr_static(cls, name)
        kind = getattr(function, _MARK, None)
        if isinstance(kind, CallKind):
            target = inspect.unwrap(function)
            is_async = inspect.iscoroutinefunction(target) or inspect.isasyncgenfunction(target)
            methods[name] = ExportedMethod(name=name, kind=kind, function=function, is_async=is_async)
    return methods
