"""@export and @exportstream mark what is callable, and refuse what must stay private."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest

from jumpstarter.driver import Driver, export, exportstream
from jumpstarter.driver.decorators import CallKind, exported_methods


class Example(Driver):
    @classmethod
    def client(cls) -> str:
        return "jumpstarter.client.DriverClient"

    @export
    def unary(self) -> None: ...

    @export
    async def unary_async(self) -> None: ...

    @export
    def streaming(self) -> Iterator[int]:
        yield 1

    @export
    async def streaming_async(self) -> AsyncIterator[int]:
        yield 1

    @exportstream
    @asynccontextmanager
    async def connect(self) -> AsyncIterator[None]:
        yield

    @exportstream
    async def bare(self) -> AsyncIterator[None]:
        yield

    def not_exported(self) -> None: ...


class Child(Example):
    def unary(self) -> None:  # overridden without @export: no longer callable
        ...


def test_each_kind_of_method_is_recognised() -> None:
    methods = exported_methods(Example)
    assert {name: (method.kind, method.is_async) for name, method in methods.items()} == {
        "unary": (CallKind.UNARY, False),
        "unary_async": (CallKind.UNARY, True),
        "streaming": (CallKind.STREAMING, False),
        "streaming_async": (CallKind.STREAMING, True),
        "connect": (CallKind.STREAM, True),
        "bare": (CallKind.STREAM, True),
    }


def test_a_bare_async_generator_becomes_a_context_manager() -> None:
    assert hasattr(Example().bare(), "__aenter__")


def test_overriding_without_export_unexports() -> None:
    assert "unary" not in exported_methods(Child)
    assert "unary_async" in exported_methods(Child)


@pytest.mark.parametrize("name", ["_private", "__dunder__"])
def test_private_names_cannot_be_exported(name: str) -> None:
    def method(self: object) -> None: ...

    method.__name__ = name
    with pytest.raises(TypeError, match="names starting with an underscore stay private"):
        export(method)
    with pytest.raises(TypeError, match="names starting with an underscore stay private"):
        exportstream(method)


def test_only_functions_can_be_exported() -> None:
    with pytest.raises(TypeError, match="@export decorates methods defined with def or async def"):
        export(staticmethod(lambda: None))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="@export decorates methods"):
        export(property(lambda self: 1))  # type: ignore[arg-type]


def test_a_driver_must_name_its_client() -> None:
    class NoClient(Driver):
        pass

    with pytest.raises(TypeError, match="abstract method"):
        NoClient()  # type: ignore[abstract]
