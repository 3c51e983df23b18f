"""The top-level fields of an exporter configuration, and reading them from a file."""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import Field, PositiveInt, PrivateAttr

from jumpstarter.config._connection import ENDPOINT_RULE, Endpoint, Section, TLSConfig
from jumpstarter.config._messages import kind_of
from jumpstarter.config.exporter._build import build_tree
from jumpstarter.config.exporter._entries import Entry, check_export, walk
from jumpstarter.config.exporter._settings import Plan, plan
from jumpstarter.config.meta import ObjectMeta
from jumpstarter.config.yaml import KEY, Located
from jumpstarter.driver import Composite

API_VERSION: Final = "jumpstarter.dev/v1alpha1"
KIND: Final = "ExporterConfig"

# The original's documentation spells grpcOptions this way; such files mean grpcOptions.
LEGACY_GRPC_OPTIONS: Final = "grpcConfig"
# Top-level sections where null means "not given" (the original accepted a null grpcOptions).
_OPTIONAL_SECTIONS = ("tls", "grpcOptions", LEGACY_GRPC_OPTIONS, "hooks", "failureDetection", "export")


class HookConfig(Section):
    """A script the exporter runs before or after each lease (with ``endpoint``)."""

    script: str = Field(min_length=1, description="the script: inline text, or the path of a script file")
    timeout: PositiveInt = Field(120, description="a whole number of seconds above 0 (120 when left out)")
    on_failure: Literal["warn", "endLease", "exit"] = Field("warn", alias="onFailure")
    exec_: str | None = Field(
        None, alias="exec", description="the interpreter that runs the script (default: chosen from the script)"
    )


class HooksConfig(Section):
    """Scripts run around each lease."""

    before_lease: HookConfig | None = Field(None, alias="beforeLease")
    after_lease: HookConfig | None = Field(None, alias="afterLease")


class FailureDetectionConfig(Section):
    """When the original's exporter, restarting itself after failures, gives up."""

    max_rapid_failures: int = Field(5, alias="maxRapidFailures")
    rapid_failure_window: int = Field(60, alias="rapidFailureWindow")  # seconds


class ExporterConfig(Section):
    """An exporter configuration (see `jumpstarter.config.exporter`); `build` makes its driver tree."""

    api_version: Literal["jumpstarter.dev/v1alpha1"] = Field(API_VERSION, alias="apiVersion")
    kind: Literal["ExporterConfig"] = KIND
    metadata: ObjectMeta
    endpoint: Endpoint | None = Field(None, description=ENDPOINT_RULE)
    token: str | None = Field(None, repr=False, description="text: the exporter's token")  # kept out of logs
    tls: TLSConfig = Field(default_factory=TLSConfig)
    grpc_options: dict[str, str | int] = Field(default_factory=dict, alias="grpcOptions")
    description: str | None = None
    hooks: HooksConfig = Field(default_factory=HooksConfig)
    failure_detection: FailureDetectionConfig = Field(default_factory=FailureDetectionConfig, alias="failureDetection")
    export: dict[Any, Any] = Field(default_factory=dict)  # checked by check_export, which says more
    """The entries as written; read-only (`build` works from what `load_exporter_config` checked)."""

    # Where the file said what, for build()'s errors, and the checked entries.
    _located: Located | None = PrivateAttr(None)
    _entries: dict[str, Entry] | None = PrivateAttr(None)

    def build(self) -> Composite:
        """A new driver tree: a Composite root whose children are the export entries.

        Resolves every driver type and checks every config before creating any driver, so a
        mistake leaves no hardware half-opened. Raises ConfigError.
        """
        located, entries = self._checked_entries()
        return build_tree(located, self._plans(), entries, self.description)

    def check(self) -> None:
        """Everything `build` checks, without creating any driver: for an exporter to fail at start."""
        self._plans()

    def _plans(self) -> dict[Entry, Plan]:
        located, entries = self._checked_entries()
        return {entry: plan(located, entry) for entry in walk(entries.values()) if entry.type is not None}

    def _checked_entries(self) -> tuple[Located, dict[str, Entry]]:
        if self._located is None or self._entries is None:
            # Made in Python rather than read from a file: no lines to point at, the same checks.
            located = Located(data={"export": self.export}, file="<ExporterConfig>")
            self._entries = check_export(located, self.export)
            self._located = located
        return self._located, self._entries


def exporter_config(located: Located) -> ExporterConfig:
    """The configuration in `located`, with everything but the drivers checked."""
    data = located.data
    if not isinstance(data, dict):
        fix = "start from the example in the documentation of jumpstarter.config.exporter"
        raise located.error((), f"an exporter configuration is a mapping, not {kind_of(data)}", fix)
    _check_header(located, data)
    values = {key: value for key, value in data.items() if not (value is None and key in _OPTIONAL_SECTIONS)}
    if LEGACY_GRPC_OPTIONS in values and "grpcOptions" in values:
        raise located.error(
            (LEGACY_GRPC_OPTIONS, KEY),
            "grpcConfig and grpcOptions are two names of the same settings",
            "keep grpcOptions: and move what grpcConfig: holds into it",
        )
    export = values.get("export", {})
    if not isinstance(export, dict):
        raise located.error(
            ("export",),
            f"export is {kind_of(export)}, not a mapping of entry names to entries",
            "write export:, then one entry per line below it, such as  power: {type: MockPower}",
        )
    renamed = {}
    if LEGACY_GRPC_OPTIONS in values:
        values["grpcOptions"] = values.pop(LEGACY_GRPC_OPTIONS)
        renamed["grpcOptions"] = LEGACY_GRPC_OPTIONS
    config = located.validate(ExporterConfig, values, renamed=renamed)
    config._located, config._entries = located, check_export(located, export)
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
