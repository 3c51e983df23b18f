"""Fixtures shared by the core's tests."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from jumpstarter.driver import Driver
from jumpstarter.registry import driver_aliases, installed_drivers
from jumpstarter.testing import serve_socket

DRIVER_MODULE_TEMPLATE = '''
from jumpstarter.driver import Driver


class Relay(Driver):
    """A relay board of {distribution}."""

    @classmethod
    def client(cls):
        return "{package}.client.RelayClient"
'''


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """Install fake distributions: a package and its .dist-info with entry points, on sys.path."""
    monkeypatch.syspath_prepend(str(tmp_path))
    installed_drivers.cache_clear()
    driver_aliases.cache_clear()
    packages = []

    def install(distribution: str, entry_points: str = "", client: str | None = None) -> None:
        """A distribution with a driver module (`Relay`), an optional client module, and entry points."""
        package = distribution.replace("-", "_")
        packages.append(package)
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
        driver_module = DRIVER_MODULE_TEMPLATE.format(distribution=distribution, package=package)
        (tmp_path / package / "driver.py").write_text(driver_module)
        if client is not None:
            (tmp_path / package / "client.py").write_text(client)
        info = tmp_path / f"{package}-1.2.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: 1.2.3\n")
        # `entry_points` may go on with other groups: "[jumpstarter.driver_aliases]\n...".
        (info / "entry_points.txt").write_text(f"[jumpstarter.drivers]\n{entry_points}\n")
        installed_drivers.cache_clear()
        driver_aliases.cache_clear()

    yield install
    installed_drivers.cache_clear()
    driver_aliases.cache_clear()
    for name in [name for name in sys.modules if name.split(".")[0] in packages]:
        del sys.modules[name]


@pytest.fixture
def exporter_socket() -> Callable[[Driver], AbstractContextManager[str]]:
    """Serve a driver tree from an event loop in a background thread, as an exporter would;
    the context manager yields the socket path for clients to connect to."""
    return serve_socket
