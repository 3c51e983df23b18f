"""The exporter configuration: which drivers an exporter serves, and where its controller is.

The format is the original jumpstarter's, so its files load unchanged::

    apiVersion: jumpstarter.dev/v1alpha1     # optional, and no other value is accepted
    kind: ExporterConfig                     # optional, and no other value is accepted
    metadata: {namespace: lab, name: demo}   # name is required, namespace is optional
    endpoint: grpc.example.com:443           # the controller, for distributed mode (optional)
    token: "..."                             # optional
    tls: {ca: "", insecure: false}           # optional
    grpcOptions: {grpc.keepalive_time_ms: 20000}   # optional; also read under the name
                                                   # `grpcConfig` that the original's documentation uses
    description: Bench 3                     # optional: the description of the root driver
    hooks:                                   # optional: scripts run around each lease
      beforeLease: {script: j power on, timeout: 120, onFailure: warn, exec: /bin/sh}
      afterLease: {script: j power off}
    failureDetection: {maxRapidFailures: 5, rapidFailureWindow: 60}   # optional
    export:                                  # the drivers, by name
      power:
        type: MockPower                      # the driver class
        description: Main power              # optional: Driver.description
        methods_description: {"on": Switch it on}   # optional: Driver.methods_description
        config: {voltage: 12}                # the driver's settings: its dataclass fields
        children: {}                         # optional: more entries, as under export
      dut:
        children:                            # no type: a Composite that groups its children
          console: {type: PySerial, config: {url: /dev/ttyUSB0}}
          power: {ref: power}                # an alias of the entry at that dotted path

The rules:

* ``type`` is an entry-point name (``MockPower``), a distribution-qualified name
  (``jumpstarter-driver-power:MockPower``) or an import path
  (``jumpstarter_driver_power.driver.MockPower``); see `jumpstarter.registry.resolve_driver`.
* An entry has ``type`` (a driver), or ``children`` without ``type`` (a `Composite`), or ``ref``
  and nothing else (an alias). ``config`` needs ``type``.
* ``ref`` is a dotted path of entry names from the top of ``export`` (``power``, ``dut.console``),
  which may go through other aliases. An alias is its target's very driver object: served under
  both names with one uuid, closed once. A ref to itself, refs that go round in a circle and refs
  that make an entry contain itself (an alias of its own ancestor) are errors.
* The keys of ``config`` are the fields of the driver's dataclass that its constructor takes, except
  those an entry sets in other ways (``uuid``, ``children``, ``description``, ``methods_description``)
  and private ``_names``; ``labels`` and ``log_level`` are settings like the others. A field without
  a default is required.
* Config values are checked against the fields' annotations with pydantic in **lax** mode, the mode
  of the original's pydantic-dataclass drivers, and the constructor gets the converted values:
  "5" becomes 5 for an ``int``, 12 becomes 12.0 for a ``float``, "yes" becomes True for a ``bool``,
  text becomes a ``Path``; but 5.5 is no ``int`` and a number is no ``str`` (quote it). A value whose
  annotation pydantic cannot check goes to the constructor as written.
* A top-level section written empty (``tls:``, ``hooks:``, ``export:``...) is one left out.
* Unknown keys are errors everywhere, with the keys allowed there and the closest one. YAML reads an
  unquoted ``on``, ``off``, ``yes`` or ``no`` as a boolean: quote such keys (``"on": ...``).

Loading and building are two steps. `load_exporter_config` reads the file and checks everything that
needs no driver (the top-level fields, the shape of the entries, the refs), so tools can read a
configuration whose drivers are not installed. `ExporterConfig.build` imports the driver classes and
checks every entry's config, and only when all are right creates a new driver tree: a `Composite` root
whose children are the ``export`` entries. The exporter builds a tree for each client session, so a
build never reuses a driver; building once at start-up finds every mistake early. When a constructor
raises, the build stops and closes the drivers it created.

Every mistake raises a `ConfigError` whose message starts with ``file:line:column: at dotted.path``
and ends with how to fix it.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import inspect
import logging
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, TypeAdapter, ValidationError
from pydantic.errors import PydanticUserError

from jumpstarter.config.yaml import KEY, ConfigError, Located, PathPart, format_path, load_yaml
from jumpstarter.driver import Composite, Driver
from jumpstarter.registry import DriverNotFound, resolve_driver

logger = logging.getLogger(__name__)

API_VERSION: Final = "jumpstarter.dev/v1alpha1"
KIND: Final = "ExporterConfig"

# The original's documentation spells grpcOptions this way; such files mean grpcOptions.
_LEGACY_GRPC_OPTIONS = "grpcConfig"
# Top-level sections where null means "not given" (the original accepted a null grpcOptions).
_OPTIONAL_SECTIONS = ("tls", "grpcOptions", _LEGACY_GRPC_OPTIONS, "hooks", "failureDetection", "export")

_ENTRY_KEYS = ("type", "description", "methods_description", "config", "children", "ref")
# Driver fields that an entry sets in other ways, or that are no settings at all: why config may not set them.
_NOT_SETTINGS = {
    "uuid": "the exporter gives every driver a new uuid; remove it",
    "children": "write children: next to config:, in the entry itself",
    "description": "write description: next to config:, in the entry itself",
    "methods_description": "write methods_description: next to config:, in the entry itself",
    "resources": "it is the driver's own state; remove it",
    "logger": "it is the driver's own state; set log_level instead",
}
# The settings every driver has.
_BASE_SETTINGS = ("labels", "log_level")
_TYPE_FIX = (
    "type names a driver class: an installed driver's name (`jmp driver list`), "
    "distribution:Name, or an import path such as package.module.Class"
)


# -- the top-level fields ---------------------------------------------------------------------------


class _Section(BaseModel):
    # Python code may use the field names; a file must use the aliases (`_check_model_keys` sees to it).
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class ObjectMeta(_Section):
    """Who the exporter is in the controller."""

    namespace: str | None = None
    name: str


class TLSConfig(_Section):
    """How the exporter trusts its controller."""

    ca: str = ""  # the CA certificates to trust; empty: the system's
    insecure: bool = False


class HookConfig(_Section):
    """A script the exporter runs before or after a lease."""

    script: str  # inline, or the path of a script file
    timeout: int = 120  # seconds
    on_failure: Literal["warn", "endLease", "exit"] = Field("warn", alias="onFailure")
    exec_: str | None = Field(None, alias="exec")  # the interpreter; None: chosen from the script


class HooksConfig(_Section):
    """Scripts run around each lease."""

    before_lease: HookConfig | None = Field(None, alias="beforeLease")
    after_lease: HookConfig | None = Field(None, alias="afterLease")


class FailureDetectionConfig(_Section):
    """When an exporter that keeps failing right after it starts gives up."""

    max_rapid_failures: int = Field(5, alias="maxRapidFailures")
    rapid_failure_window: int = Field(60, alias="rapidFailureWindow")  # seconds


class ExporterConfig(_Section):
    """An exporter configuration (see the module's documentation); `build` makes its driver tree."""

    api_version: Literal["jumpstarter.dev/v1alpha1"] = Field(API_VERSION, alias="apiVersion")
    kind: Literal["ExporterConfig"] = KIND
    metadata: ObjectMeta
    endpoint: str | None = None
    token: str | None = Field(None, repr=False)  # kept out of logs
    tls: TLSConfig = Field(default_factory=TLSConfig)
    grpc_options: dict[str, str | int] = Field(default_factory=dict, alias="grpcOptions")
    description: str | None = None
    hooks: HooksConfig = Field(default_factory=HooksConfig)
    failure_detection: FailureDetectionConfig = Field(default_factory=FailureDetectionConfig, alias="failureDetection")
    export: dict[str, Any] = Field(default_factory=dict)
    """The entries as written; read-only (`build` works from what `load_exporter_config` checked)."""

    # Where the file said what, for build()'s errors, and the checked entries.
    _located: Located | None = PrivateAttr(None)
    _entries: dict[str, _Entry] | None = PrivateAttr(None)

    def build(self) -> Composite:
        """A new driver tree: a Composite root whose children are the export entries.

        Resolves every driver type and checks every config before creating any driver, so a
        mistake leaves no hardware half-opened. Raises ConfigError.
        """
        located, entries = self._checked_entries()
        return _Builder(located, self._plans()).tree(entries, self.description)

    def check(self) -> None:
        """Everything `build` checks, without creating any driver: for an exporter to fail at start."""
        self._plans()

    def _plans(self) -> dict[_Entry, tuple[type[Driver], dict[str, Any]]]:
        located, entries = self._checked_entries()
        return {entry: _plan(located, entry) for entry in _walk(entries.values()) if entry.type is not None}

    def _checked_entries(self) -> tuple[Located, dict[str, _Entry]]:
        if self._located is None or self._entries is None:
            # Made in Python rather than read from a file: no lines to point at, the same checks.
            located = Located(data={"export": self.export}, file="<ExporterConfig>")
            self._entries = _check_export(located, self.export)
            self._located = located
        return self._located, self._entries


def load_exporter_config(path: str | os.PathLike[str]) -> ExporterConfig:
    """Read the exporter configuration file at `path`.

    Checks everything but the drivers themselves, which `ExporterConfig.build` checks. Raises ConfigError.
    """
    return _exporter_config(load_yaml(Path(path)))


def parse_exporter_config(text: str, *, name: str = "<string>") -> ExporterConfig:
    """`load_exporter_config` for YAML text; `name` stands for the file in messages."""
    return _exporter_config(load_yaml(text, name=name))


def _exporter_config(located: Located) -> ExporterConfig:
    data = located.data
    if not isinstance(data, dict):
        fix = "start from the example in the documentation of jumpstarter.config.exporter"
        raise located.error((), f"an exporter configuration is a mapping, not {_kind_of(data)}", fix)
    _check_header(located, data)
    values = {key: value for key, value in data.items() if not (value is None and key in _OPTIONAL_SECTIONS)}
    _check_model_keys(located, (), values, ExporterConfig, "at the top level", also=(_LEGACY_GRPC_OPTIONS,))
    if _LEGACY_GRPC_OPTIONS in values:
        if "grpcOptions" in values:
            raise located.error(
                (_LEGACY_GRPC_OPTIONS, KEY),
                "grpcConfig and grpcOptions are two names of the same settings",
                "keep grpcOptions: and move what grpcConfig: holds into it",
            )
        values["grpcOptions"] = values.pop(_LEGACY_GRPC_OPTIONS)
    export = values.get("export", {})
    if not isinstance(export, dict):
        raise located.error(
            ("export",),
            f"export is {_kind_of(export)}, not a mapping of entry names to entries",
            "write export:, then one entry per line below it, such as  power: {type: MockPower}",
        )
    entries = _check_export(located, export)
    try:
        config = ExporterConfig.model_validate(values)
    except ValidationError as error:
        raise _field_error(located, error, renamed=_LEGACY_GRPC_OPTIONS in data) from None
    config._located, config._entries = located, entries
    return config


def _check_header(located: Located, data: dict[Any, Any]) -> None:
    # Both may be left out, as the original allowed, but a wrong value means another kind of file.
    api_version = data.get("apiVersion", API_VERSION)
    if api_version != API_VERSION:
        raise located.error(
            ("apiVersion",),
            f"apiVersion is {api_version!r}, a version this jumpstarter does not read",
            f"use apiVersion: {API_VERSION}",
        )
    kind = data.get("kind", KIND)
    if kind != KIND:
        other = " (a client's configuration?)" if kind == "ClientConfig" else ""
        raise located.error(("kind",), f"kind is {kind!r}{other}, not {KIND}", f"use kind: {KIND}")


def _check_model_keys(
    located: Located,
    path: tuple[PathPart, ...],
    data: Mapping[Any, Any],
    model: type[BaseModel],
    where: str,
    also: Sequence[str] = (),
) -> None:
    """Reject keys the model does not have, here and in its nested sections, pointing at the key."""
    fields = {info.alias or name: info for name, info in model.model_fields.items()}
    _check_keys(located, path, data, list(fields), where, also)
    for key, info in fields.items():
        section = _model_in(info.annotation)
        if section is not None and isinstance(data.get(key), dict):
            _check_model_keys(located, (*path, key), data[key], section, f"in {format_path((*path, key))}")


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model of a field annotated `Model` or `Model | None`, if any."""
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _field_error(located: Located, error: ValidationError, renamed: bool) -> ConfigError:
    problem = error.errors()[0]
    loc = tuple(problem["loc"])
    if problem["type"] == "missing":
        parent = format_path(loc[:-1])
        return located.error(
            loc[:-1],
            f"{format_path(loc)} is missing",
            f"add {loc[-1]}: " + (f"under {parent}:" if parent else "at the top level"),
        )
    field, expected = _expected(ExporterConfig, loc)
    section = _model_in(expected)
    fix = f"{field} takes {_describe(expected)}"
    if section is not None:  # not the Python class's name: the keys the file may write there
        keys = ", ".join(info.alias or key for key, info in section.model_fields.items())
        fix = f"{field} is a mapping of {keys}"
    if renamed and loc[:1] == ("grpcOptions",):
        loc = (_LEGACY_GRPC_OPTIONS, *loc[1:])
    # pydantic adds the members of a union to the path: keep the part that is in the file.
    loc = _data_loc(located.data, loc)
    return located.error(loc, f"{format_path(loc)} is {_short(problem['input'])}: {problem['msg']}", fix)


def _expected(model: type[BaseModel], loc: Sequence[PathPart]) -> tuple[str, Any]:
    """The name and annotation of the deepest field of `model` along `loc`."""
    name: str = "the value"
    annotation: Any = Any
    current: type[BaseModel] | None = model
    for part in loc:
        fields = {info.alias or key: info for key, info in current.model_fields.items()} if current else {}
        if part not in fields:
            break
        name, annotation = str(part), fields[part].annotation
        current = _model_in(annotation)
    return name, annotation


# -- the export entries ---------------------------------------------------------------------------


@dataclass(eq=False)  # entries are told apart by identity: two may be written the same
class _Entry:
    """One checked entry of export; a ref's `target` is set once every entry is known."""

    name: str  # dotted, from the top of export: "dut.console"
    path: tuple[PathPart, ...]  # in the file: ("export", "dut", "children", "console")
    type: str | None = None
    description: str | None = None
    methods_description: dict[str, str] | None = None
    config: dict[str, Any] = dataclasses.field(default_factory=dict)
    children: dict[str, _Entry] | None = None  # None: the entry has no children: key
    ref: str | None = None
    target: _Entry | None = None  # for a ref: the entry, not itself a ref, that it leads to


def _check_export(located: Located, export: dict[Any, Any]) -> dict[str, _Entry]:
    entries = _parse_entries(located, ("export",), "", export)
    _resolve_refs(located, entries)
    _check_finite(located, entries)
    return entries


def _parse_entries(
    located: Located, path: tuple[PathPart, ...], prefix: str, data: dict[Any, Any]
) -> dict[str, _Entry]:
    entries = {}
    for name, value in data.items():
        if not isinstance(name, str):
            raise located.error((*path, name, KEY), f"the entry name {name!r} is not text", _quote_it(name))
        entries[name] = _parse_entry(located, (*path, name), f"{prefix}{name}", value)
    return entries


def _parse_entry(located: Located, path: tuple[PathPart, ...], name: str, data: Any) -> _Entry:
    if not isinstance(data, dict):
        raise located.error(
            (*path, KEY) if data is None else path,  # nothing written: point at the name
            f"entry {name!r} is {_kind_of(data)}, not a mapping",
            f"write {path[-1]}: {{type: <driver>, config: {{...}}}}, {{children: {{...}}}} or {{ref: <entry>}}",
        )
    _check_keys(located, path, data, _ENTRY_KEYS, f"in entry {name!r}")
    if "ref" in data:
        return _parse_ref(located, path, name, data)
    if "type" in data and not (isinstance(data["type"], str) and data["type"].strip()):
        raise located.error((*path, "type"), f"the type of entry {name!r} is {_short(data['type'])}", _TYPE_FIX)
    if "type" not in data:
        if "config" in data:
            raise located.error(
                (*path, "config", KEY),
                f"entry {name!r} has config: but no type: to say which driver it configures",
                "add type: <driver>, or remove config:",
            )
        if "children" not in data:
            raise located.error(
                (*path, KEY),
                f"entry {name!r} has no type:, children: or ref:",
                "add type: <driver> for a driver, children: for a group of entries, "
                "or ref: <entry> for another name of an existing entry",
            )
    config = data.get("config") or {}
    if not isinstance(config, dict):
        raise located.error((*path, "config"), f"config is {_kind_of(config)}, not a mapping", "write  name: value")
    for key in config:
        if not isinstance(key, str):
            raise located.error((*path, "config", key, KEY), f"the config key {key!r} is not text", _quote_it(key))
    children = data.get("children")
    if children is not None and not isinstance(children, dict):
        raise located.error(
            (*path, "children"),
            f"children is {_kind_of(children)}, not a mapping of entry names to entries",
            "write children:, then one entry per line below it",
        )
    return _Entry(
        name=name,
        path=path,
        type=data.get("type"),
        description=_optional_text(located, (*path, "description"), data.get("description")),
        methods_description=_texts(located, (*path, "methods_description"), data.get("methods_description")),
        config=config,
        # `children:` with nothing under it is no children, but still a Composite when there is no type.
        children=_parse_entries(located, (*path, "children"), f"{name}.", children or {})
        if "children" in data
        else None,
    )


def _parse_ref(located: Located, path: tuple[PathPart, ...], name: str, data: dict[str, Any]) -> _Entry:
    other = next((key for key in data if key != "ref"), None)
    if other is not None:
        raise located.error(
            (*path, other, KEY),
            f"entry {name!r} has both ref: and {other}:",
            f"an alias is the driver at its ref, with that driver's own type, config, children and description: "
            f"remove {other}:, or remove ref: to declare a driver of its own",
        )
    ref = data["ref"]
    if not isinstance(ref, str) or not all(ref.split(".")):
        raise located.error(
            (*path, "ref"),
            f"ref {_short(ref)} is not a dotted path of entry names",
            "write ref: power for a top-level entry, ref: dut.console for one under children:",
        )
    return _Entry(name=name, path=path, ref=ref)


def _optional_text(located: Located, path: tuple[PathPart, ...], value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise located.error(path, f"{path[-1]} is {_short(value)}, not text", _quote_it(value))
    return value


def _texts(located: Located, path: tuple[PathPart, ...], value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise located.error(path, f"{path[-1]} is {_kind_of(value)}, not a mapping", "write  method: help text")
    for key, text in value.items():
        if not isinstance(key, str):
            raise located.error((*path, key, KEY), f"the method name {key!r} is not text", _quote_it(key))
        _optional_text(located, (*path, key), text)
    return value


def _walk(entries: Iterable[_Entry]) -> Iterator[_Entry]:
    """Every entry as written, in the file's order (not following refs)."""
    for entry in entries:
        yield entry
        yield from _walk((entry.children or {}).values())


def _resolve_refs(located: Located, roots: dict[str, _Entry]) -> None:
    """Set the target of every ref: the entry, not itself a ref, that its path leads to."""

    def target(entry: _Entry, chain: tuple[_Entry, ...]) -> _Entry:
        if entry.ref is None:
            return entry
        if entry.target is not None:
            return entry.target
        if entry in chain:  # `chain` holds the refs being resolved, each waiting on the next
            loop = chain[chain.index(entry) :]
            first = loop[0]
            if len(loop) == 1:
                raise located.error(
                    (*first.path, "ref"), f"{first.name!r} refers to itself (ref: {first.ref})", _REF_FIX
                )
            circle = " -> ".join(e.name for e in (*loop, first))
            raise located.error((*first.path, "ref"), f"the refs go round in a circle: {circle}", _REF_FIX)
        level: dict[str, _Entry] = roots
        walked: list[str] = []
        for part in entry.ref.split("."):
            child = level.get(part)
            if child is None:
                raise _nowhere(located, entry, part, walked, level)
            found = target(child, (*chain, entry))  # a path may go through another alias
            level = found.children or {}
            walked.append(part)
        entry.target = found
        return found

    for entry in _walk(roots.values()):
        target(entry, ())


_REF_FIX = "point ref: at an entry that is a driver (one with type: or children:)"


def _nowhere(located: Located, entry: _Entry, part: str, walked: list[str], level: dict[str, _Entry]) -> ConfigError:
    where = f"under {'.'.join(walked)!r}" if walked else "at the top of export"
    close = _close_match(part, list(level))
    fix = f"did you mean {close!r}? " if close else ""
    fix += f"the entries there: {', '.join(level)}" if level else f"{'.'.join(walked)!r} has no children"
    return located.error(
        (*entry.path, "ref"), f"ref {entry.ref!r} of {entry.name!r} leads nowhere: no {part!r} {where}", fix
    )


def _check_finite(located: Located, roots: dict[str, _Entry]) -> None:
    """Reject aliases that make an entry contain itself: its driver tree would never end."""
    on_path: list[tuple[_Entry, _Entry]] = []  # (entry as written, the entry it stands for), root first
    done: set[_Entry] = set()

    def visit(written: _Entry) -> None:
        real = written.target or written
        for index, (_, seen) in enumerate(on_path):
            if seen is real:
                raise _loop_error(located, [entry for entry, _ in on_path[index:]] + [written])
        if real in done:
            return
        on_path.append((written, real))
        for child in (real.children or {}).values():
            visit(child)
        on_path.pop()
        done.add(real)

    for entry in roots.values():
        visit(entry)


def _loop_error(located: Located, loop: list[_Entry]) -> ConfigError:
    """`loop`: entries as written, each inside the previous one's driver, the last standing for the first's."""
    real = loop[0].target or loop[0]
    refs = [entry for entry in loop[1:] if entry.ref is not None]  # a loop needs a ref: plain children nest
    blamed = refs[-1]
    if len(refs) == 1 and blamed.name.startswith(f"{real.name}."):
        return located.error(
            (*blamed.path, "ref"),
            f"ref {blamed.ref!r} of {blamed.name!r} names {real.name!r}, which contains {blamed.name!r} itself",
            f"an alias cannot stand for its own ancestor (the tree would never end): point it outside {real.name!r}",
        )
    steps = " -> ".join(entry.name + (f" (ref {entry.ref})" if entry.ref else "") for entry in loop[1:])
    return located.error(
        (*blamed.path, "ref"),
        f"the refs make {real.name!r} contain itself: {real.name} -> {steps}",
        "an alias cannot lead back to one of its ancestors (the tree would never end): point one of these elsewhere",
    )


# -- the drivers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Setting:
    """A field of a driver class that config may set."""

    annotation: Any
    required: bool
    adapter: TypeAdapter[Any] | None  # None: pydantic cannot check it, the constructor will


@functools.cache
def _settings(driver_class: type[Driver]) -> dict[str, _Setting]:
    settings = {}
    for field in dataclasses.fields(driver_class):
        if not field.init or field.name.startswith("_") or field.name in _NOT_SETTINGS:
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
    # The second try accepts instances of classes pydantic knows nothing of (a serial port object...).
    for config in (None, ConfigDict(arbitrary_types_allowed=True)):
        try:
            return TypeAdapter(annotation, config=config)
        except (PydanticUserError, TypeError, NameError):
            continue
    return None


def _plan(located: Located, entry: _Entry) -> tuple[type[Driver], dict[str, Any]]:
    """The driver class of an entry and its checked, converted config."""
    assert entry.type is not None
    type_path = (*entry.path, "type")
    try:
        driver_class = resolve_driver(entry.type)
    except DriverNotFound as error:
        raise located.error(type_path, str(error), _TYPE_FIX) from None
    settings = _settings(driver_class)
    config_path = (*entry.path, "config")
    values = {}
    # Every build converts its own copy: drivers of two builds never share a list or a dict.
    for key, value in copy.deepcopy(entry.config).items():
        if key in _NOT_SETTINGS:
            raise located.error((*config_path, key, KEY), f"{key!r} is not set through config:", _NOT_SETTINGS[key])
        setting = settings.get(key)
        if setting is None:
            # The driver's own settings first: those are what a misspelled key most likely meant.
            names = sorted(settings, key=lambda name: name in _BASE_SETTINGS)
            raise _unknown_key(located, config_path, key, names, f"in the config of {driver_class.__name__}")
        values[key] = _convert(located, (*config_path, key), driver_class, setting, value)
    for key, setting in settings.items():
        if setting.required and key not in values:
            raise located.error(
                config_path if config_path in located.marks else (*entry.path, KEY),  # no config: written
                f"{driver_class.__name__} needs {key!r} in the config of entry {entry.name!r}",
                f"add {key}: <{_describe(setting.annotation)}> under config:",
            )
    return driver_class, values


def _convert(
    located: Located, path: tuple[PathPart, ...], driver_class: type[Driver], setting: _Setting, value: Any
) -> Any:
    if setting.adapter is None:
        return value
    try:
        return setting.adapter.validate_python(value)
    except ValidationError as error:
        problem = error.errors()[0]
        loc = _data_loc(value, problem["loc"])
        key = path[-1]
        raise located.error(
            (*path, *loc),
            f"{format_path((key, *loc))} of {driver_class.__name__} is {_short(problem['input'])}: {problem['msg']}",
            f"{key} takes {_describe(setting.annotation)}",
        ) from None


class _Builder:
    """Creates the drivers of one build, each entry once, so that an alias is its target's very object."""

    def __init__(self, located: Located, plans: dict[_Entry, tuple[type[Driver], dict[str, Any]]]) -> None:
        self.located = located
        self.plans = plans
        self.made: dict[_Entry, Driver] = {}

    def tree(self, entries: dict[str, _Entry], description: str | None) -> Composite:
        try:
            children = {name: self.driver(entry) for name, entry in entries.items()}
        except BaseException:
            self.close_made()
            raise
        return Composite(description=description, children=children)

    def driver(self, entry: _Entry) -> Driver:
        entry = entry.target or entry
        if entry in self.made:
            return self.made[entry]
        # Only what the entry says: a driver class may have defaults of its own for these.
        given: dict[str, Any] = {}
        if entry.children is not None:
            given["children"] = {name: self.driver(child) for name, child in entry.children.items()}
        if entry.description is not None:
            given["description"] = entry.description
        if entry.methods_description is not None:
            given["methods_description"] = dict(entry.methods_description)
        if entry.type is None:
            driver: Driver = Composite(**given)
        else:
            driver_class, config = self.plans[entry]
            try:
                driver = driver_class(**config, **given)
            except Exception as error:
                raise self.located.error(
                    (*entry.path, KEY),
                    f"creating {driver_class.__module__}.{driver_class.__qualname__} for entry {entry.name!r} failed: "
                    f"{type(error).__name__}: {error}",
                    "check the entry's config: against the driver's documentation, and that its hardware is there",
                ) from error
        self.made[entry] = driver
        return driver

    def close_made(self) -> None:
        """Close the drivers created before the build failed: they may hold hardware."""
        for entry, driver in reversed(self.made.items()):
            try:
                driver.close()
            except Exception:
                logger.exception("closing %s driver %r after a failed build failed", type(driver).__name__, entry.name)


# -- message helpers ---------------------------------------------------------------------------------


def _check_keys(
    located: Located,
    path: tuple[PathPart, ...],
    data: Mapping[Any, Any],
    allowed: Sequence[str],
    where: str,
    also: Sequence[str] = (),  # accepted, but not suggested
) -> None:
    for key in data:
        if key not in allowed and key not in also:
            raise _unknown_key(located, path, key, allowed, where)


def _unknown_key(
    located: Located, path: tuple[PathPart, ...], key: Any, allowed: Sequence[str], where: str
) -> ConfigError:
    fix = f"YAML reads an unquoted yes, no, on or off as {key}: quote the key; " if isinstance(key, bool) else ""
    close = _close_match(str(key), allowed)
    fix += f"did you mean {close!r}? " if close else ""
    fix += f"the keys allowed: {', '.join(allowed)}" if allowed else "no keys are allowed"
    return located.error((*path, key, KEY), f"unknown key {key!r} {where}", fix)


def _close_match(word: str, candidates: Sequence[str]) -> str | None:
    by_lower = {candidate.lower(): candidate for candidate in candidates}
    matches = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return by_lower[matches[0]] if matches else None


def _data_loc(data: Any, loc: Sequence[Any]) -> tuple[PathPart, ...]:
    """The longest start of a pydantic error location that is a path into `data`."""
    found: list[PathPart] = []
    for part in loc:
        in_mapping = isinstance(data, dict) and part in data
        in_list = isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        if not (in_mapping or in_list):
            break
        data = data[part]
        found.append(part)
    return tuple(found)


def _describe(annotation: Any) -> str:
    if annotation is Any:
        return "any value"
    if get_origin(annotation) is Literal:
        return "one of " + ", ".join(repr(choice) for choice in get_args(annotation))
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _kind_of(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return _short(value)


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def _quote_it(value: Any) -> str:
    if isinstance(value, bool):  # the data holds True, not the `on` or `yes` of the file
        return 'YAML reads an unquoted on, off, yes or no as true or false: quote it ("on": ...)'
    return f'quote it: "{value}"'


__all__ = [
    "API_VERSION",
    "KIND",
    "ConfigError",
    "ExporterConfig",
    "FailureDetectionConfig",
    "HookConfig",
    "HooksConfig",
    "ObjectMeta",
    "TLSConfig",
    "load_exporter_config",
]
