"""A driver's settings (the dataclass fields ``config:`` may set), and an entry's config checked against them."""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
import sys
from dataclasses import dataclass
from typing import Any

from pydantic import ConfigDict, TypeAdapter, ValidationError
from pydantic.errors import PydanticUserError
from pydantic_core import SchemaError

from jumpstarter.config._messages import describe, short, unknown_key_fix
from jumpstarter.config.exporter._entries import TYPE_FIX, Entry
from jumpstarter.config.yaml import KEY, ConfigError, Located, PathPart, data_path, format_path
from jumpstarter.driver import Driver
from jumpstarter.registry import DriverNotFound, resolve_driver

# Driver fields that an entry sets in other ways, or that are no settings at all: why config may not set them.
NOT_SETTINGS = {
    "uuid": "the exporter gives every driver a new uuid; remove it",
    "children": "write children: next to config:, in the entry itself",
    "description": "write description: next to config:, in the entry itself",
    "methods_description": "write methods_description: next to config:, in the entry itself",
    "resources": "it is the driver's own state; remove it",
    "logger": "it is the driver's own state; set log_level instead",
}
# The settings every driver has.
BASE_SETTINGS = ("labels", "log_level")

Plan = tuple[type[Driver], dict[str, Any]]


@dataclass(frozen=True)
class _Setting:
    """A field of a driver class that config may set."""

    annotation: Any
    required: bool
    adapter: TypeAdapter[Any] | None  # None: pydantic cannot check it, the constructor will


def plan(located: Located, entry: Entry) -> Plan:
    """The driver class of an entry and its checked, converted config."""
    assert entry.type is not None
    try:
        driver_class = resolve_driver(entry.type)
    except DriverNotFound as error:
        raise located.error((*entry.path, "type"), str(error), TYPE_FIX) from None
    settings = _settings(driver_class)
    config_path = (*entry.path, "config")
    values = {}
    # Every build converts its own copy: drivers of two builds never share a list or a dict.
    for key, value in copy.deepcopy(entry.config).items():
        if key in NOT_SETTINGS:
            raise located.error((*config_path, key, KEY), f"{key!r} is not set through config:", NOT_SETTINGS[key])
        setting = settings.get(key)
        if setting is None:
            raise _not_a_setting(located, (*config_path, key, KEY), driver_class, key, settings)
        values[key] = _convert(located, (*config_path, key), driver_class, setting, value)
    for key, setting in settings.items():
        if setting.required and key not in values:
            raise located.error(
                config_path if located.has(config_path) else (*entry.path, KEY),  # no config: written
                f"{driver_class.__name__} needs {key!r} in the config of entry {entry.name!r}",
                f"add {key}: <{describe(setting.annotation)}> under config:",
            )
    return driver_class, values


def _not_a_setting(
    located: Located, path: tuple[PathPart, ...], driver_class: type[Driver], key: str, settings: dict[str, _Setting]
) -> ConfigError:
    undeclared = _undeclared(driver_class).get(key)
    if undeclared is not None:
        # Annotations of a class that is not itself a dataclass are no fields: a common slip.
        return located.error(
            path,
            f"{key!r} is annotated in {undeclared.__qualname__}, but {undeclared.__qualname__} is not a dataclass, "
            f"so its annotations are no settings of {driver_class.__name__}",
            f"decorate {undeclared.__qualname__} with @dataclass(kw_only=True) (from dataclasses import dataclass), "
            "as every driver class that declares settings must be",
        )
    # The driver's own settings first: those are what a misspelled key most likely meant.
    names = sorted(settings, key=lambda name: name in BASE_SETTINGS)
    problem = f"unknown key {key!r} in the config of {driver_class.__name__}"
    return located.error(path, problem, unknown_key_fix(key, names))


def _undeclared(driver_class: type[Driver]) -> dict[str, type]:
    """Names annotated in the driver's classes that are not dataclasses themselves, by name: the class."""
    found: dict[str, type] = {}
    for klass in reversed(driver_class.__mro__):
        if not (isinstance(klass, type) and issubclass(klass, Driver)) or "__dataclass_fields__" in vars(klass):
            continue
        for name, annotation in inspect.get_annotations(klass).items():
            if not name.startswith("_") and "ClassVar" not in str(annotation):
                found[name] = klass
    return found


@functools.cache
def _settings(driver_class: type[Driver]) -> dict[str, _Setting]:
    settings = {}
    for field in dataclasses.fields(driver_class):
        if not field.init or field.name.startswith("_") or field.name in NOT_SETTINGS:
            continue
        annotation = _annotation(driver_class, field)
        required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        settings[field.name] = _Setting(annotation, required, _adapter(annotation))
    return settings


def _annotation(driver_class: type[Driver], field: dataclasses.Field[Any]) -> Any:
    """A field's annotation as an object (under `from __future__ import annotations` it is a string)."""
    if not isinstance(field.type, str):
        return field.type
    for klass in driver_class.__mro__:
        if field.name in inspect.get_annotations(klass):
            module = sys.modules.get(klass.__module__)
            try:
                # What typing.get_type_hints does, one field at a time so that one field annotated with a
                # name imported only for type checkers costs that field its check, not the others theirs.
                return eval(field.type, vars(module) if module else {}, dict(vars(klass)))
            except Exception:
                return Any
    return Any


def _adapter(annotation: Any) -> TypeAdapter[Any] | None:
    # The second try accepts instances of classes pydantic knows nothing of (a serial port object...);
    # what neither accepts (a typing.Protocol that isinstance cannot check) is left to the constructor.
    for config in (None, ConfigDict(arbitrary_types_allowed=True)):
        try:
            return TypeAdapter(annotation, config=config)
        except (PydanticUserError, SchemaError, TypeError, NameError):
            continue
    return None


def _convert(
    located: Located, path: tuple[PathPart, ...], driver_class: type[Driver], setting: _Setting, value: Any
) -> Any:
    if setting.adapter is None:
        return value
    try:
        return setting.adapter.validate_python(value)
    except ValidationError as error:
        problem = error.errors()[0]
        loc = data_path(value, problem["loc"])
        key = path[-1]
        raise located.error(
            (*path, *loc),
            f"{format_path((key, *loc))} of {driver_class.__name__} is {short(problem['input'])}: {problem['msg']}",
            f"{key} takes {describe(setting.annotation)}",
        ) from None
