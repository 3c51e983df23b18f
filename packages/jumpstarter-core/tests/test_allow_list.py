"""The client's allow-list: installed driver packages, the client configuration, JMP_DRIVERS_ALLOW."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from jumpstarter.client import StubDriverClient, connect
from jumpstarter.client.classes import ClientClassPolicy
from jumpstarter.config.client import load_client_config
from jumpstarter.config.yaml import ConfigError
from jumpstarter.driver import Composite, Driver
from testsupport.drivers import Named

CLIENT_MODULE = """
open({marker!r}, "a").write("imported\\n")
from jumpstarter.client import DriverClient


class RelayClient(DriverClient):
    def click(self):
        return self.call("click")
"""


def write_config(text: str) -> Path:
    path = Path(os.environ["JMP_CLIENT_CONFIG"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_installed_driver_packages_are_allowed(site: Callable[..., None]) -> None:
    site("acme-relays", "Relay = acme_relays.driver:Relay")
    policy = ClientClassPolicy.default()
    assert policy.allows("acme_relays.client.RelayClient")
    assert policy.allows("jumpstarter.client.CompositeClient")
    assert not policy.allows("acme_other.client.RelayClient")
    assert not policy.unsafe


def test_the_environment_adds_patterns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JMP_DRIVERS_ALLOW", " lab_tools.* , vendor.client.Exact ,")
    policy = ClientClassPolicy.default()
    assert policy.allows("lab_tools.power.Client") and policy.allows("vendor.client.Exact")
    assert not policy.allows("vendor.client.Other")


@pytest.mark.parametrize(("variable", "value"), [("JMP_DRIVERS_ALLOW", "x.*,UNSAFE"), ("JMP_DRIVERS_UNSAFE", "true")])
def test_unsafe_allows_everything(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    assert ClientClassPolicy.default().allows("anything.at.All")


def test_the_client_configuration_adds_patterns() -> None:
    write_config("apiVersion: jumpstarter.dev/v1alpha1\nkind: ClientConfig\ndrivers:\n  allow: [lab_tools.*]\n")
    assert ClientClassPolicy.default().allows("lab_tools.power.Client")
    write_config("drivers:\n  unsafe: true\n")
    assert ClientClassPolicy.default().unsafe


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "drivers:\n  alow: [x]\n",
            r"client.yaml:2:3: at drivers.alow: unknown key 'alow' in drivers\n"
            r"  fix: did you mean 'allow'\? the keys allowed: allow, unsafe$",
        ),
        (
            "drivers:\n  allow: x.*\n",
            r"client.yaml:2:10: at drivers.allow: drivers.allow is 'x.\*': Input should be a valid list\n"
            r"  fix: allow takes a list of glob patterns",
        ),
        (
            "metadata: {name: ../../etc}\n",
            r"client.yaml:1:18: at metadata.name: metadata.name is '../../etc': not a Kubernetes name \(it has '/'\); "
            r"'etc' would be one\n"
            r"  fix: name takes a Kubernetes name",
        ),
        (
            "kind: ExporterConfig\n",
            r"client.yaml:1:7: at kind: kind is 'ExporterConfig' \(an exporter's configuration\?\)\n"
            r"  fix: use kind: ClientConfig",
        ),
        ("drivers: [\n", r"client.yaml:2:1: not valid YAML"),
        ("- a\n- b\n", r"client.yaml:1:1: a client configuration is a mapping"),
    ],
)
def test_a_wrong_client_configuration_says_where(text: str, message: str) -> None:
    write_config(text)
    with pytest.raises(ConfigError, match=message):
        load_client_config()


def test_no_client_configuration_is_the_defaults() -> None:
    assert load_client_config().drivers.allow == []


@pytest.fixture
def exporter(
    exporter_socket: Callable[[Driver], AbstractContextManager[str]], tmp_path: Path
) -> Iterator[tuple[str, Path]]:
    marker = tmp_path / "imports.log"
    root = Composite(
        children={
            "registered": Named(client_path="acme_relays.client.RelayClient"),
            "unregistered": Named(client_path="loose_tools.client.RelayClient"),
        }
    )
    with exporter_socket(root) as path:
        yield path, marker


def test_connect_imports_what_the_defaults_allow_and_nothing_else(
    site: Callable[..., None], exporter: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, marker = exporter
    site("acme-relays", "Relay = acme_relays.driver:Relay", client=CLIENT_MODULE.format(marker=str(marker)))
    site("loose-tools", "", client=CLIENT_MODULE.format(marker=str(marker)))  # installed, but registers no drivers
    with connect(path) as client:
        assert client.registered.click() == "clicked"
        assert isinstance(client.unregistered, StubDriverClient)
        assert "loose_tools.client" not in sys.modules
        assert marker.read_text() == "imported\n"  # acme_relays' client only
    monkeypatch.setenv("JMP_DRIVERS_ALLOW", "loose_tools.*")
    with connect(path) as client:
        assert client.unregistered.click() == "clicked"


def test_a_namespace_package_allows_its_driver_package_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from jumpstarter.registry import installed_drivers

    info = tmp_path / "acme_lab-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-lab\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[jumpstarter.drivers]\nRelay = acme.lab.drivers:Relay\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    installed_drivers.cache_clear()
    try:
        policy = ClientClassPolicy.default()
        assert policy.allows("acme.lab.client.RelayClient")
        assert not policy.allows("acme.other.client.Client")
    finally:
        installed_drivers.cache_clear()
