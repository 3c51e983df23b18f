"""Client classes named by an exporter are checked against the allow-list before any import."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from jumpstarter.client import CompositeClient, DriverClient, DriverClientUnavailable, StubDriverClient, connect
from jumpstarter.driver import Composite, Driver
from testsupport.drivers import Named


@pytest.fixture
def side_effect_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A module whose import leaves a mark on disk: proof of whether it was imported."""
    package = tmp_path / "untrusted_pkg_for_tests"
    package.mkdir()
    marker = tmp_path / "imported"
    (package / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (package / "client.py").write_text(
        "from jumpstarter.client import DriverClient\nclass Client(DriverClient):\n    def ping(self):\n"
        "        return self.call('ping')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield marker
    for name in [name for name in sys.modules if name.startswith("untrusted_pkg_for_tests")]:
        del sys.modules[name]


@pytest.fixture
def exporter(exporter_socket: Callable[[Driver], AbstractContextManager[str]]) -> Iterator[str]:
    """A session serving drivers that name various client classes; yields its socket path."""
    root = Composite(
        children={
            "untrusted": Named(client_path="untrusted_pkg_for_tests.client.Client"),
            "missing": Named(client_path="not_installed_pkg.client.Client", children={"inner": Named()}),
            "not_a_client": Named(client_path="collections.OrderedDict"),
            "no_such_class": Named(client_path="json.NoSuchClient"),
            "malformed": Named(client_path="NoModule"),
            "fine": Named(),
        }
    )
    with exporter_socket(root) as path:
        yield path


def test_a_class_outside_the_allow_list_is_never_imported(exporter: str, side_effect_module: Path) -> None:
    with connect(exporter) as client:
        assert isinstance(client, CompositeClient)
        assert isinstance(client.untrusted, StubDriverClient)
        assert not side_effect_module.exists()
        assert "untrusted_pkg_for_tests" not in sys.modules
        with pytest.raises(DriverClientUnavailable) as raised:
            client.untrusted.ping()
        message = str(raised.value)
        assert "driver 'untrusted' needs the client class untrusted_pkg_for_tests.client.Client" in message
        assert "it is not in the allowed client packages" in message
        assert "JMP_DRIVERS_ALLOW='untrusted_pkg_for_tests.*'" in message
        # The rest of the tree keeps working.
        assert client.fine.call("ping") == "pong"


def test_an_allowed_class_is_imported_and_used(exporter: str, side_effect_module: Path) -> None:
    with connect(exporter, allow=["untrusted_pkg_for_tests.*"]) as client:
        assert type(client.untrusted).__name__ == "Client"
        assert client.untrusted.ping() == "pong"
    assert side_effect_module.exists()


def test_unsafe_allows_everything(exporter: str, side_effect_module: Path) -> None:
    with connect(exporter, unsafe=True) as client:
        assert client.untrusted.ping() == "pong"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        (
            "missing",
            "not_installed_pkg.client.Client, but it is not installed; to fix: pip install --find-links DIST "
            "not-installed-pkg",
        ),
        ("not_a_client", "it is not a DriverClient subclass"),
        ("no_such_class", "json has no NoSuchClient"),
        ("malformed", "it is not an import path of the form package.module.Class"),
    ],
)
def test_unusable_classes_become_stubs_that_explain(exporter: str, name: str, reason: str) -> None:
    with connect(exporter, allow=["*"]) as client:
        stub = client.children[name]
        assert isinstance(stub, StubDriverClient)
        for use in (lambda: stub.call("ping"), lambda: list(stub.streamingcall("x")), lambda: stub.anything):
            with pytest.raises(DriverClientUnavailable, match=reason.replace("(", r"\(").replace(")", r"\)")):
                use()
        # DriverClientUnavailable is an ImportError, as a missing package would be.
        with pytest.raises(ImportError):
            stub.call("ping")


def test_every_use_of_a_stub_says_why_it_is_unavailable(exporter: str) -> None:
    reason = "not_installed_pkg.client.Client, but it is not installed"
    with connect(exporter) as client:
        stub = client.missing
        uses = [
            lambda: client.portal.call(stub.call_async, "ping"),
            lambda: client.portal.call(_first_item, stub.streamingcall_async("x")),
            lambda: _enter_sync(stub.stream()),
            lambda: stub.open_stream(),
            lambda: _enter_sync(stub.resource(b"data")),
            lambda: client.portal.call(_enter, stub.resource_async(b"data")),
        ]
        for use in uses:
            with pytest.raises(DriverClientUnavailable, match=reason):
                use()
        # The exporter's log stream is no driver's: it works from a stub as from any client.
        with stub.log_stream():
            assert client.fine.call("ping") == "pong"


async def _first_item(items: Any) -> Any:
    return await anext(items)


def _enter_sync(manager: Any) -> Any:
    with manager as value:
        return value


async def _enter(manager: Any) -> Any:
    async with manager as value:
        return value


def test_the_children_of_a_stub_still_work(exporter: str) -> None:
    with connect(exporter) as client:
        assert client.missing.inner.call("ping") == "pong"


def test_stub_warnings_name_the_driver(
    exporter: str, side_effect_module: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with connect(exporter):
        pass
    assert (
        "driver 'untrusted' cannot be used: it is not in the allowed client packages "
        "(untrusted_pkg_for_tests is installed but registers no drivers)" in caplog.text
    )
    assert "driver 'missing' cannot be used: it is not installed" in caplog.text


def test_a_refused_class_in_a_module_without_a_spec_becomes_a_stub(
    exporter_socket: Callable[[Driver], AbstractContextManager[str]],
) -> None:
    # A script's classes live in __main__, which has no import spec.
    with exporter_socket(Named(client_path="__main__.Client")) as path, connect(path) as client:
        assert isinstance(client, StubDriverClient)
        with pytest.raises(DriverClientUnavailable, match="__main__ is installed but registers no drivers"):
            client.call("ping")


def test_the_original_composite_client_maps_to_ours(exporter: str) -> None:
    # Exporters of the original jumpstarter name jumpstarter_driver_composite.client.CompositeClient.
    with connect(exporter) as client:
        assert type(client) is CompositeClient
        assert type(client.fine) is DriverClient
