"""The installed drivers: classes that distributions register as entry points.

A driver distribution lists its public driver classes in the ``jumpstarter.drivers``
entry-point group of its ``pyproject.toml``:

    [project.entry-points."jumpstarter.drivers"]
    MockPower = "jumpstarter_driver_power.driver:MockPower"

so that installing it is all it takes to use its drivers: an exporter config names them
(``type: MockPower``), ``jmp driver list`` shows them, and clients allow their client
classes. `resolve_driver` turns a config's ``type`` into a class.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import inspect
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jumpstarter.driver import Driver

ENTRY_POINT_GROUP = "jumpstarter.drivers"

# Drivers people name that come from distributions they may not have installed yet.
KNOWN_DRIVERS = {
    "jumpstarter-driver-power": ("MockPower", "SyncMockPower", "UsbHubPower", "UsbRelayPower", "SerialRelayPower",
                                 "CommandPower"),
    "jumpstarter-driver-serial": ("PySerial", "LoopbackSerial"),
    "jumpstarter-driver-network": ("TcpNetwork", "UdpNetwork", "UnixNetwork", "EchoNetwork"),
}  # fmt: skip


class DriverNotFound(LookupError):
    """A driver type names no installed driver, or more than one."""


@dataclass(frozen=True)
class InstalledDriver:
    """A driver class registered by an installed distribution."""

    name: str  # the entry point's name, what an exporter config's `type` says
    value: str  # "module:Class"
    distribution: str
    version: str

    @property
    def qualified_name(self) -> str:
        """``distribution:Name``: the name that stays unique when two distributions register one name."""
        return f"{self.distribution}:{self.name}"

    @property
    def class_path(self) -> str:
        return self.value.replace(":", ".")

    def load(self) -> type[Driver]:
        """The class; DriverNotFound if its module cannot be imported."""
        module_name, _, attribute = self.value.partition(":")
        try:
            module = importlib.import_module(module_name)
        except Exception as error:
            raise DriverNotFound(
                f"the driver {self.name!r} of {self.distribution} cannot be imported: {type(error).__name__}: {error}"
            ) from None
        driver_class = module
        for part in attribute.split("."):
            driver_class = getattr(driver_class, part)
        return driver_class  # type: ignore[return-value]

    def description(self) -> str:
        """The first line of the class's docstring (imports the class)."""
        doc = inspect.getdoc(self.load()) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""


@cache
def installed_drivers() -> tuple[InstalledDriver, ...]:
    """The drivers of every installed distribution, by name (cached for the process)."""
    drivers = []
    seen = set()
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        distribution = entry_point.dist
        key = (entry_point.name, entry_point.value, distribution.name if distribution else "")
        if key in seen:  # a distribution found twice on the path
            continue
        seen.add(key)
        drivers.append(
            InstalledDriver(
                name=entry_point.name,
                value=entry_point.value,
                distribution=distribution.name if distribution else "(unknown)",
                version=distribution.version if distribution else "",
            )
        )
    return tuple(sorted(drivers, key=lambda driver: (driver.name.lower(), driver.distribution)))


def resolve_driver(type_name: str) -> type[Driver]:
    """The driver class a config's ``type`` names.

    Three spellings: an entry-point name (``MockPower``); a distribution-qualified name
    for when two distributions register the same name (``jumpstarter-driver-power:MockPower``);
    a dotted import path (``jumpstarter_driver_power.driver.MockPower``).
    Raises DriverNotFound with close matches and the fix.
    """
    from jumpstarter.driver import Driver

    type_name = type_name.strip()
    if ":" in type_name:
        distribution, _, name = type_name.partition(":")
        candidates = [
            driver
            for driver in installed_drivers()
            if driver.name == name and _normalize(driver.distribution) == _normalize(distribution)
        ]
        if not candidates:
            raise DriverNotFound(_not_found_message(type_name, name))
        return _checked(candidates[0].load(), type_name, Driver)
    candidates = [driver for driver in installed_drivers() if driver.name == type_name]
    if len({driver.value for driver in candidates}) > 1:
        names = ", ".join(driver.qualified_name for driver in candidates)
        raise DriverNotFound(f"{type_name!r} is registered by more than one distribution; name one of: {names}")
    if candidates:
        return _checked(candidates[0].load(), type_name, Driver)
    if "." in type_name:
        return _checked(_import_path(type_name), type_name, Driver)
    raise DriverNotFound(_not_found_message(type_name, type_name))


def _import_path(path: str) -> type:
    module_name, _, class_name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        package = path.split(".")[0]
        if error.name and module_name.startswith(error.name):
            raise DriverNotFound(
                f"{path!r} names module {module_name!r}, which is not installed"
                + (f"; install it with: pip install {package.replace('_', '-')}" if package != module_name else "")
            ) from None
        raise DriverNotFound(f"importing {module_name!r} for {path!r} failed: {error}") from None
    except Exception as error:  # a module that raises on import: report it, not a traceback
        raise DriverNotFound(
            f"importing {module_name!r} for {path!r} failed: {type(error).__name__}: {error}"
        ) from None
    try:
        return getattr(module, class_name)
    except AttributeError:
        close = difflib.get_close_matches(class_name, [n for n in dir(module) if not n.startswith("_")], n=3)
        hint = f" (did you mean {' or '.join(repr(f'{module_name}.{c}') for c in close)}?)" if close else ""
        raise DriverNotFound(f"module {module_name!r} has no {class_name!r}{hint}") from None


def _checked(value: object, type_name: str, driver_base: type) -> type[Driver]:
    if not (isinstance(value, type) and issubclass(value, driver_base)):
        raise DriverNotFound(f"{type_name!r} is {value!r}, not a Driver class")
    return value  # type: ignore[return-value]


def _not_found_message(type_name: str, name: str) -> str:
    known = [driver.name for driver in installed_drivers()] + [driver.qualified_name for driver in installed_drivers()]
    message = f"no installed driver is called {type_name!r}"
    close = difflib.get_close_matches(type_name, known, n=3, cutoff=0.6)
    if close:
        message += f"; did you mean {' or '.join(repr(c) for c in close)}?"
    for distribution, names in KNOWN_DRIVERS.items():
        if name in names:
            message += f"; it comes with {distribution}: pip install {distribution}"
            break
    else:
        if not close:
            message += "; `jmp driver list` shows the installed drivers"
    return message


def _normalize(distribution: str) -> str:
    return distribution.lower().replace("_", "-").replace(".", "-")
