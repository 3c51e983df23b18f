"""Which client class drives a reported driver, and whether the client may import it.

An exporter names a client class (an import path) for each driver. Importing a module
runs its code, so the path is checked against an allow-list of glob patterns **before**
anything is imported: an exporter cannot make a client run code it did not agree to.

The default allow-list (`ClientClassPolicy.default`) is the union of:

- the packages of the installed distributions' drivers (entry points in the
  ``jumpstarter.drivers`` group): installing a driver package is consent to its clients.
  A driver registered as ``pkg.driver:Power`` allows ``pkg.*``; as ``ns.lab.drivers:Power``,
  ``ns.lab.*`` (the package that holds the driver's module, never a whole namespace);
- ``drivers.allow`` of the client configuration;
- ``JMP_DRIVERS_ALLOW``, comma-separated glob patterns.

``UNSAFE`` in ``JMP_DRIVERS_ALLOW``, ``JMP_DRIVERS_UNSAFE=true`` or ``drivers.unsafe: true``
allow any class.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from jumpstarter.config.env import JMP_DRIVERS_ALLOW, JMP_DRIVERS_UNSAFE, client_config_given

if TYPE_CHECKING:
    from jumpstarter.client.base import DriverClient

# Client classes of the original jumpstarter that this package provides under another path.
LEGACY_CLIENT_CLASSES = {
    "jumpstarter_driver_composite.client.CompositeClient": "jumpstarter.client.CompositeClient",
}

# The clients that ship with jumpstarter-core are always allowed: installing it was consent.
_BUILTIN_PATTERNS = ("jumpstarter.client.*",)


@dataclass(frozen=True)
class ClientClassPolicy:
    """The client classes a connection may import: glob patterns over their import paths.

    ``unsafe=True`` allows any class (``JMP_DRIVERS_ALLOW=UNSAFE``).
    """

    allow: tuple[str, ...] = ()
    unsafe: bool = False

    @classmethod
    def default(cls, allow: Iterable[str] = (), unsafe: bool = False) -> ClientClassPolicy:
        """The installed driver packages, the client configuration and the environment, plus `allow`."""
        from jumpstarter.entry_points import installed_driver_values

        patterns = {f"{_driver_package(value.split(':')[0])}.*" for value in installed_driver_values()}
        patterns.update(allow)
        configured_unsafe = False
        if client_config_given():  # only then are pydantic and yaml needed
            from jumpstarter.config.client import resolve_client

            config = resolve_client().config
            patterns.update(config.drivers.allow)
            configured_unsafe = config.drivers.unsafe
        environment = [item.strip() for item in os.environ.get(JMP_DRIVERS_ALLOW, "").split(",") if item.strip()]
        unsafe = (
            unsafe
            or configured_unsafe
            or "UNSAFE" in environment
            or os.environ.get(JMP_DRIVERS_UNSAFE, "").lower() in ("1", "true", "yes")
        )
        patterns.update(item for item in environment if item != "UNSAFE")
        return cls(allow=tuple(sorted(patterns)), unsafe=unsafe)

    @classmethod
    def exactly(cls, paths: Iterable[str]) -> ClientClassPolicy:
        """Allow exactly these class paths (glob characters in them are not special)."""
        return cls(allow=tuple(_escape(path) for path in paths))

    def allows(self, path: str) -> bool:
        return self.unsafe or any(fnmatchcase(path, pattern) for pattern in (*_BUILTIN_PATTERNS, *self.allow))


@dataclass(frozen=True)
class UnavailableClass:
    """Why a client class cannot be used, and how to fix it."""

    path: str
    reason: str
    fix: str


def resolve_client_class(path: str | None, policy: ClientClassPolicy) -> type[DriverClient] | UnavailableClass:
    """Import the client class at `path` if the policy allows it."""
    from jumpstarter.client.base import DriverClient

    if not path:
        return UnavailableClass("", "the exporter did not name a client class", "upgrade the exporter")
    path = LEGACY_CLIENT_CLASSES.get(path, path)
    module_name, _, class_name = path.rpartition(".")
    if not module_name or not all(path.split(".")):
        return UnavailableClass(
            path, "it is not an import path of the form package.module.Class", "fix the driver's client()"
        )
    top_level = module_name.split(".")[0]
    if not policy.allows(path):
        if not _installed(top_level):
            return UnavailableClass(path, "it is not installed", _install_command(top_level))
        return UnavailableClass(
            path,
            f"it is not in the allowed client packages ({top_level} is installed but registers no drivers)",
            f"allow it if you trust the exporter: JMP_DRIVERS_ALLOW='{_driver_package(module_name)}.*' "
            "or drivers.allow in the client configuration",
        )
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is not None and module_name.startswith(error.name):
            package = module_name.split(".")[0]
            return UnavailableClass(path, "it is not installed", _install_command(package))
        return UnavailableClass(path, f"importing it failed: {error}", "fix the client package's installation")
    except Exception as error:
        return UnavailableClass(path, f"importing it failed: {type(error).__name__}: {error}", "fix the client package")
    client_class = getattr(module, class_name, None)
    if client_class is None:
        return UnavailableClass(
            path, f"{module_name} has no {class_name}", "install the client package version that matches the exporter's"
        )
    if not (isinstance(client_class, type) and issubclass(client_class, DriverClient)):
        return UnavailableClass(path, "it is not a DriverClient subclass", "fix the driver's client()")
    return client_class


def _installed(top_level: str) -> bool:
    """Whether a top-level package exists, without running any of its code."""
    if top_level in sys.modules:
        return True
    try:
        # On a top-level name, find_spec only searches the path: no module code runs.
        return importlib.util.find_spec(top_level) is not None
    except (ImportError, ValueError):
        return False


def _driver_package(module: str) -> str:
    """The package that holds a module: ``pkg.driver`` -> ``pkg``; a top-level module stands for itself."""
    return module.rpartition(".")[0] or module


def _escape(path: str) -> str:
    return "".join(f"[{char}]" if char in "*?[" else char for char in path)


def _install_command(package: str) -> str:
    from jumpstarter.registry import install_command  # only on this error path: j starts without it

    return install_command(package.replace("_", "-"))
