"""The installed drivers: classes that distributions register as entry points.

A driver distribution lists its public driver classes in the ``jumpstarter.drivers``
entry-point group of its ``pyproject.toml``:

    [project.entry-points."jumpstarter.drivers"]
    MockPower = "jumpstarter_driver_power.driver:MockPower"

so that installing it is all it takes to use its drivers: an exporter config names them
(``type: MockPower``), ``jmp driver list`` shows them, and clients allow their client
classes. `resolve_driver` turns a config's ``type`` into a class.

A distribution that reimplements drivers of another project may also declare the class
paths that project's configurations use, in the ``jumpstarter.driver_aliases`` group, so
that those configurations load unchanged:

    [project.entry-points."jumpstarter.driver_aliases"]
    "jumpstarter_driver_pyserial.driver.PySerial" = "jumpstarter_driver_serial.driver:PySerial"

An alias is only another spelling of ``type``: ``jmp driver list`` does not list it.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, cast

from jumpstarter.entry_points import ENTRY_POINT_GROUP, installed_driver_values

if TYPE_CHECKING:
    from jumpstarter.driver import Driver

__all__ = [
    "ALIAS_ENTRY_POINT_GROUP",
    "ENTRY_POINT_GROUP",
    "DriverAlias",
    "DriverNotFound",
    "InstalledDriver",
    "driver_aliases",
    "install_command",
    "install_hint",
    "installed_driver_values",
    "installed_drivers",
    "resolve_driver",
]

ALIAS_ENTRY_POINT_GROUP = "jumpstarter.driver_aliases"


def install_command(distribution: str) -> str:
    """How to install the driver distribution `distribution`: the one place every message takes it from.

    The package index holds the original jumpstarter's packages under the names of ours (and
    the original's `jumpstarter` has our import name), so a plain `pip install` could bring
    the wrong project: the wheels built from the repository come first.
    """
    return (
        f"pip install --find-links DIST {distribution} (DIST: the wheels built in the jumpstarter repository by "
        "'uv build --all-packages --wheel --out-dir DIST'; the package index's packages of these names are the "
        "original jumpstarter's)"
    )


def install_hint(distribution: str) -> str:
    return f"install it with: {install_command(distribution)}"


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
        """The class; DriverNotFound if its module cannot be imported (AttributeError if it lacks the class)."""
        # What the entry point names, which resolve_driver checks before using it as a driver.
        return cast("type[Driver]", _load(self.value, f"the driver {self.name!r} of {self.distribution}"))

    def description(self) -> str:
        """The first line of the class's docstring (imports the class)."""
        doc = inspect.getdoc(self.load()) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""


@dataclass(frozen=True)
class DriverAlias:
    """Another project's class path of a driver that an installed distribution provides."""

    path: str  # the other project's dotted class path, as its configurations write `type`
    value: str  # "module:Class" of the driver that stands for it
    distribution: str

    def load(self) -> type[Driver]:
        """The class; DriverNotFound if its module cannot be imported (AttributeError if it lacks the class)."""
        # What the entry point names, which resolve_driver checks before using it as a driver.
        return cast("type[Driver]", _load(self.value, f"the alias {self.path!r} of {self.distribution}"))


@cache
def installed_drivers() -> tuple[InstalledDriver, ...]:
    """The drivers of every installed distribution, by name (cached for the process)."""
    drivers = [
        InstalledDriver(name=name, value=value, distribution=distribution, version=version)
        for name, value, distribution, version in _entry_points(ENTRY_POINT_GROUP)
    ]
    return tuple(sorted(drivers, key=lambda driver: (driver.name.lower(), driver.distribution)))


@cache
def driver_aliases() -> tuple[DriverAlias, ...]:
    """The aliases that installed distributions declare (cached for the process)."""
    return tuple(
        DriverAlias(path=name.strip(), value=value, distribution=distribution)
        for name, value, distribution, _ in _entry_points(ALIAS_ENTRY_POINT_GROUP)
    )


def _entry_points(group: str) -> list[tuple[str, str, str, str]]:
    """(name, value, distribution, version) of each entry point of `group`, once each."""
    import importlib.metadata  # only here: importing it costs more than reading entry points

    found: dict[tuple[str, str, str], str] = {}
    for entry_point in importlib.metadata.entry_points(group=group):
        distribution = entry_point.dist
        name = distribution.name if distribution else "(unknown)"
        # A distribution found twice on the path counts once.
        found.setdefault((entry_point.name, entry_point.value, name), distribution.version if distribution else "")
    return [(key[0], key[1], key[2], version) for key, version in found.items()]


def resolve_driver(type_name: str) -> type[Driver]:
    """The driver class a config's ``type`` names.

    Four spellings: an entry-point name (``MockPower``); a distribution-qualified name
    for when two distributions register the same name (``jumpstarter-driver-power:MockPower``);
    an alias that an installed distribution declares (the original jumpstarter's
    ``jumpstarter_driver_pyserial.driver.PySerial``); a dotted import path
    (``jumpstarter_driver_power.driver.MockPower``), tried in that order.
    Raises DriverNotFound with close matches and the fix.
    """
    type_name = type_name.strip()
    if ":" in type_name:
        distribution, _, name = type_name.partition(":")
        candidates: list[InstalledDriver | DriverAlias] = [
            driver
            for driver in installed_drivers()
            if driver.name == name and _normalize(driver.distribution) == _normalize(distribution)
        ]
        if not candidates:
            raise DriverNotFound(_not_in_distribution(type_name, distribution, name))
    else:
        registered = [driver for driver in installed_drivers() if driver.name == type_name]
        if len({driver.value for driver in registered}) > 1:
            names = ", ".join(driver.qualified_name for driver in registered)
            raise DriverNotFound(f"{type_name!r} is registered by more than one distribution; name one of: {names}")
        candidates = list(registered)
        if not candidates:
            candidates = [alias for alias in driver_aliases() if alias.path == type_name]
            if len({alias.value for alias in candidates}) > 1:
                names = ", ".join(sorted({alias.distribution for alias in candidates}))
                raise DriverNotFound(
                    f"{type_name!r} is an alias of a different driver in each of {names}: "
                    "name the driver you mean by its entry point (`jmp driver list`)"
                )
    if candidates:
        try:
            return _checked(candidates[0].load(), type_name)
        except AttributeError as error:
            raise DriverNotFound(f"{type_name!r} cannot be loaded: {error}") from None
    if "." in type_name:
        return _checked(_import_path(type_name), type_name)
    raise DriverNotFound(_not_found_message(type_name))


def _load(value: str, what: str) -> object:
    """The object at ``module:attribute``; DriverNotFound if the module cannot be imported."""
    module_name, _, attribute = value.partition(":")
    try:
        found: object = importlib.import_module(module_name)
    except Exception as error:
        raise DriverNotFound(f"{what} cannot be imported: {_failure(error)}") from None
    for part in attribute.split("."):
        found = getattr(found, part)
    return found


def _failure(error: Exception) -> str:
    """Why importing a driver module failed, with the fix of a common slip."""
    text = f"{type(error).__name__}: {error}"
    if isinstance(error, TypeError) and "follows default argument" in str(error):
        # Driver's own fields have defaults: a subclass's field without one needs keyword-only fields.
        text += "; declare the driver class with @dataclass(kw_only=True)"
    return text


def _import_path(path: str) -> object:
    module_name, _, class_name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and module_name.startswith(error.name):
            raise DriverNotFound(_module_missing(path, module_name)) from None
        raise DriverNotFound(f"importing {module_name!r} for {path!r} failed: {error}") from None
    except Exception as error:  # a module that raises on import: report it, not a traceback
        raise DriverNotFound(f"importing {module_name!r} for {path!r} failed: {_failure(error)}") from None
    try:
        found: object = getattr(module, class_name)
        return found
    except AttributeError:
        close = difflib.get_close_matches(class_name, [n for n in dir(module) if not n.startswith("_")], n=3)
        hint = f" (did you mean {' or '.join(repr(f'{module_name}.{c}') for c in close)}?)" if close else ""
        raise DriverNotFound(f"module {module_name!r} has no {class_name!r}{hint}") from None


def _module_missing(path: str, module_name: str) -> str:
    message = f"{path!r} names module {module_name!r}, which is not installed"
    class_name = path.rpartition(".")[2]
    aliases = [alias.path for alias in driver_aliases()]
    # A typo in an alias: in its class name (the module right), or in its module (the class right).
    same_module = [alias.rpartition(".")[2] for alias in aliases if alias.rpartition(".")[0] == module_name]
    close = [f"{module_name}.{name}" for name in difflib.get_close_matches(class_name, same_module, n=1)]
    same_class = [alias for alias in aliases if alias.rpartition(".")[2] == class_name]
    close = close or difflib.get_close_matches(path, same_class, n=1, cutoff=0.8)
    if close:
        return f"{message}; did you mean {close[0]!r}?"
    if any(driver.name == class_name for driver in installed_drivers()):
        return f"{message}; an installed driver has that name: write type: {class_name}"
    if aliases:
        message += ", and no installed driver package takes that path as an alias"
    package = path.split(".")[0]
    if package != module_name:
        message += f"; {install_hint(package.replace('_', '-'))}"
    return message


def _checked(value: object, type_name: str) -> type[Driver]:
    from jumpstarter.driver import Driver

    if not (isinstance(value, type) and issubclass(value, Driver)):
        raise DriverNotFound(f"{type_name!r} is {value!r}, not a Driver class")
    return value


def _not_found_message(type_name: str) -> str:
    known = [driver.name for driver in installed_drivers()] + [driver.qualified_name for driver in installed_drivers()]
    message = f"no installed driver is called {type_name!r}"
    close = difflib.get_close_matches(type_name, known, n=3, cutoff=0.6)
    if close:
        return message + f"; did you mean {' or '.join(repr(c) for c in close)}?"
    return (
        message + "; `jmp driver list` shows the installed drivers, and a driver package is usually named after "
        f"its drivers, jumpstarter-driver-<name>: {install_hint('jumpstarter-driver-<name>')}"
    )


def _not_in_distribution(type_name: str, distribution: str, name: str) -> str:
    names = [
        driver.name for driver in installed_drivers() if _normalize(driver.distribution) == _normalize(distribution)
    ]
    message = f"no installed driver is called {type_name!r}"
    if not names:
        return f"{message}: no installed distribution {distribution!r} registers drivers; {install_hint(distribution)}"
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    return message + (f"; did you mean {distribution}:{close[0]}?" if close else f"; its drivers: {', '.join(names)}")


def _normalize(distribution: str) -> str:
    return distribution.lower().replace("_", "-").replace(".", "-")
