"""The exporter configuration: loading, building driver trees, and the message of every mistake."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

import pytest

from jumpstarter.common.utils import serve
from jumpstarter.config.exporter import (
    ExporterConfig,
    ObjectMeta,
    check_for_serving,
    lab_settings,
    load_exporter_config,
    local_mode_note,
    parse_exporter_config,
)
from jumpstarter.config.yaml import ConfigError
from jumpstarter.driver import Composite, Driver, export
from jumpstarter.registry import install_hint

CONFIGS = Path(__file__).parent / "exporter_configs"
HERE = __name__  # drivers of this module are named by their import path: f"{HERE}.Lamp"


@dataclass(kw_only=True)
class Lamp(Driver):
    """A driver with a few settings; it remembers every instance and how often it was closed."""

    made: ClassVar[list[Lamp]] = []

    watts: int = 60
    colour: str = "white"
    tags: list[str] = field(default_factory=list)
    closes: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        Lamp.made.append(self)

    @classmethod
    def client(cls) -> str:
        return "jumpstarter.client.DriverClient"

    @export
    def state(self) -> str:
        return f"{self.colour} {self.watts}W"

    def close(self) -> None:
        self.closes += 1


@dataclass(kw_only=True)
class Settings(Driver):
    """Settings of many types, to see what config values become."""

    count: int = 0
    ratio: float = 0.0
    enabled: bool = False
    where: Path = Path("/")
    ports: list[int] = field(default_factory=list)
    mode: Literal["fast", "slow"] = "fast"
    text: str = ""
    anything: Any = None

    @classmethod
    def client(cls) -> str:
        return "jumpstarter.client.DriverClient"


@dataclass(kw_only=True)
class Serial(Driver):
    """A driver with a required setting."""

    device: str
    baudrate: int = 115200

    @classmethod
    def client(cls) -> str:
        return "jumpstarter.client.DriverClient"


class Transport(Protocol):
    def command(self, text: str) -> str: ...


class Loopback:
    def command(self, text: str) -> str:
        return text


@dataclass(kw_only=True)
class WithTransport(Driver):
    """A driver whose hardware access is a field typed with a Protocol (as the testing guide's Relay)."""

    transport: Transport = field(default_factory=Loopback)
    channels: int = 4

    @classmethod
    def client(cls) -> str:
        return "jumpstarter.client.DriverClient"


@dataclass(kw_only=True)
class Missing(Driver):
    """A driver whose hardware is not there."""

    device: str = "/dev/ttyUSB9"

    def __post_init__(self) -> None:
        super().__post_init__()
        raise FileNotFoundError(f"no such device: {self.device}")

    @classmethod
    def client(cls) -> str:
        return "jumpstarter.client.DriverClient"


class Thermometer(Driver):
    """Settings annotated on a class that is no dataclass: they are no fields."""

    celsius: bool = True

    @classmethod
    def client(cls) -> str:
        return "jumpstarter.client.DriverClient"


@dataclass(kw_only=True)
class Described(Driver):
    """A driver class with a description of its own."""

    description: str | None = "from the class"

    @classmethod
    def client(cls) -> str:
        return "jumpstarter.client.DriverClient"


@pytest.fixture(autouse=True)
def forget_lamps() -> Iterator[None]:
    Lamp.made.clear()
    yield
    Lamp.made.clear()


def load(text: str) -> ExporterConfig:
    return parse_exporter_config(textwrap.dedent(text).lstrip("\n"), name="exporter.yaml")


def load_error(text: str) -> tuple[str, str]:
    """The message of loading `text`: its first line and its fix."""
    with pytest.raises(ConfigError) as raised:
        load(text)
    return split(raised.value)


def build_error(text: str) -> tuple[str, str]:
    """The message of building `text`, which loads."""
    config = load(text)
    with pytest.raises(ConfigError) as raised:
        config.build()
    return split(raised.value)


def split(error: ConfigError) -> tuple[str, str]:
    first, _, fix = str(error).partition("\n  fix: ")
    return first, fix


# -- valid configurations -------------------------------------------------------------------------

TREE = f"""
metadata: {{name: bench}}
description: The bench
export:
  lamp:
    type: {HERE}.Lamp
    description: The desk lamp
    methods_description: {{state: "What the lamp does"}}
    config: {{watts: "75", colour: red}}
  dut:
    description: The board
    children:
      console:
        type: {HERE}.Serial
        config: {{device: /dev/ttyUSB0}}
        children:
          backlight: {{type: {HERE}.Lamp, config: {{watts: 5}}}}
      light: {{ref: lamp}}
      empty: {{children: }}
  main-console: {{ref: dut.console}}
  main-backlight: {{ref: main-console.backlight}}
"""


def test_a_tree_of_drivers_composites_and_aliases() -> None:
    root = load(TREE).build()
    assert isinstance(root, Composite) and root.description == "The bench"
    assert list(root.children) == ["lamp", "dut", "main-console", "main-backlight"]
    lamp = root.children["lamp"]
    assert isinstance(lamp, Lamp)
    assert (lamp.watts, lamp.colour) == (75, "red")  # "75" became an int
    assert lamp.description == "The desk lamp"
    assert lamp.methods_description == {"state": "What the lamp does"}

    dut = root.children["dut"]
    assert type(dut) is Composite and dut.description == "The board"
    assert list(dut.children) == ["console", "light", "empty"]
    console = dut.children["console"]
    assert isinstance(console, Serial) and console.device == "/dev/ttyUSB0"
    assert console.children["backlight"].watts == 5  # type: ignore[attr-defined]
    assert type(dut.children["empty"]) is Composite and dut.children["empty"].children == {}

    # An alias is the very driver at its path, also through another alias; each driver is made once.
    assert dut.children["light"] is lamp
    assert root.children["main-console"] is console
    assert root.children["main-backlight"] is console.children["backlight"]
    assert len(Lamp.made) == 2


def test_a_client_reaches_an_alias_by_both_names() -> None:
    with serve(load(TREE).build()) as client:
        lamp, light = client.children["lamp"], client.children["dut"].children["light"]
        assert lamp.uuid == light.uuid
        assert lamp.call("state") == light.call("state") == "red 75W"
        assert light.description == "The desk lamp"
        assert light.methods_description == {"state": "What the lamp does"}
        assert client.description == "The bench"
    # The session closed the lamp once, though it serves it under two names.
    assert [lamp.closes for lamp in Lamp.made] == [1, 1]


def test_every_build_makes_new_drivers() -> None:
    config = load(
        f"""
        metadata: {{name: bench}}
        export:
          lamp: {{type: {HERE}.Lamp}}
          light: {{ref: lamp}}
          settings: {{type: {HERE}.Settings, config: {{anything: {{ports: [1]}}}}}}
        """
    )
    first, second = config.build(), config.build()
    assert first is not second
    assert first.children["lamp"] is not second.children["lamp"]
    assert first.children["lamp"].uuid != second.children["lamp"].uuid
    assert first.children["light"] is first.children["lamp"] and second.children["light"] is second.children["lamp"]
    # Not even a value pydantic passes through as it is is shared: one session cannot change the next one's.
    first.children["settings"].anything["ports"].append(2)  # type: ignore[attr-defined]
    assert second.children["settings"].anything == {"ports": [1]}  # type: ignore[attr-defined]
    assert config.build().children["settings"].anything == {"ports": [1]}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("setting", "written", "value"),
    [
        ("count", '"5"', 5),
        ("count", "5.0", 5),
        ("ratio", "12", 12.0),
        ("enabled", "yes", True),
        ("enabled", '"true"', True),
        ("where", "/dev/ttyUSB0", Path("/dev/ttyUSB0")),
        ("ports", '[1, "2"]', [1, 2]),
        ("mode", "slow", "slow"),
        ("anything", "{a: [1]}", {"a": [1]}),
    ],
)
def test_config_values_are_converted_to_the_annotated_types(setting: str, written: str, value: object) -> None:
    config = load(
        f"metadata: {{name: bench}}\nexport:\n  s: {{type: {HERE}.Settings, config: {{{setting}: {written}}}}}\n"
    )
    converted = getattr(config.build().children["s"], setting)
    assert converted == value and type(converted) is type(value)


def test_labels_and_log_level_are_settings_too() -> None:
    config = load(
        f"""
        metadata: {{name: bench}}
        export:
          lamp: {{type: {HERE}.Lamp, config: {{labels: {{site: lab-1}}, log_level: DEBUG}}}}
        """
    )
    lamp = config.build().children["lamp"]
    assert lamp.labels == {"site": "lab-1"}
    assert lamp.logger.level == logging.DEBUG  # Driver.__post_init__ ran with the setting


def test_a_field_typed_with_a_protocol_does_not_stop_the_build() -> None:
    # pydantic cannot check a Protocol that isinstance cannot: the constructor gets the value as it is.
    config = load(
        f"""
        metadata: {{name: bench}}
        export:
          relay: {{type: {HERE}.WithTransport, config: {{channels: "8"}}}}
        """
    )
    relay = config.build().children["relay"]
    assert isinstance(relay.transport, Loopback)
    assert relay.channels == 8  # the other settings are still converted


def test_an_entry_overrides_only_what_it_says() -> None:
    config = load(
        f"""
        metadata: {{name: bench}}
        export:
          plain: {{type: {HERE}.Described}}
          told: {{type: {HERE}.Described, description: from the file}}
        """
    )
    root = config.build()
    assert root.children["plain"].description == "from the class"
    assert root.children["told"].description == "from the file"


def test_driver_types_in_every_spelling() -> None:
    config = load(
        f"""
        metadata: {{name: bench}}
        export:
          entry-point: {{type: Composite}}
          qualified: {{type: "jumpstarter-core:Composite"}}
          path: {{type: jumpstarter.driver.Composite}}
          test-class: {{type: {HERE}.Lamp}}
        """
    )
    root = config.build()
    assert [type(driver) for driver in root.children.values()] == [Composite, Composite, Composite, Lamp]


def test_the_original_documentation_format_loads_unchanged() -> None:
    config = load_exporter_config(CONFIGS / "original-docs.yaml")
    assert (config.metadata.namespace, config.metadata.name) == ("default", "demo")
    assert (config.endpoint, config.token) == ("grpc.jumpstarter.example.com:443", "secret-token")
    assert "secret-token" not in repr(config)  # kept out of logs
    assert config.grpc_options == {"grpc.keepalive_time_ms": 20000}  # written as grpcConfig
    assert list(config.export) == ["power", "serial", "custom", "reference"]
    # Its drivers are not installed here: building says so, at the first of them.
    with pytest.raises(ConfigError) as raised:
        config.build()
    first, fix = split(raised.value)
    assert first == (
        f"{CONFIGS / 'original-docs.yaml'}:14:11: at export.power.type: 'jumpstarter_driver_yepkit.driver.Ykush' "
        "names module 'jumpstarter_driver_yepkit.driver', which is not installed, and no installed driver package "
        f"takes that path as an alias; {install_hint('jumpstarter-driver-yepkit')}"
    )
    assert fix.startswith("type names a driver class")


def test_every_optional_top_level_key() -> None:
    config = load_exporter_config(CONFIGS / "all-keys.yaml")
    assert (config.api_version, config.kind) == ("jumpstarter.dev/v1alpha1", "ExporterConfig")
    assert (config.metadata.namespace, config.metadata.name) == ("lab", "bench-3")
    assert (config.endpoint, config.token) == ("controller.example.com:443", "")
    assert (config.tls.ca, config.tls.insecure) == ("", True)
    assert config.grpc_options == {"grpc.keepalive_time_ms": 20000, "grpc.primary_user_agent": "bench-3"}
    assert config.description == "Bench 3, next to the window"
    before, after = config.hooks.before_lease, config.hooks.after_lease
    assert before is not None and after is not None
    assert (before.script, before.timeout, before.on_failure, before.exec_) == (
        "j power on",
        30,
        "endLease",
        "/bin/bash",
    )
    assert (after.script, after.timeout, after.on_failure, after.exec_) == ("j power off\n", 120, "warn", None)
    assert (config.failure_detection.max_rapid_failures, config.failure_detection.rapid_failure_window) == (3, 20)

    root = config.build()
    assert root.description == "Bench 3, next to the window"
    rack = root.children["rack"]
    assert rack.description == "The rack" and list(rack.children) == ["left", "right"]
    assert root.children["dut"].children["rack-left"] is rack.children["left"]


def test_the_defaults_of_a_minimal_config() -> None:
    config = load("metadata: {name: bench}\n")
    assert config.metadata.namespace is None
    assert (config.endpoint, config.token, config.description) == (None, None, None)
    assert (config.tls.ca, config.tls.insecure, config.grpc_options) == ("", False, {})
    assert (config.hooks.before_lease, config.hooks.after_lease) == (None, None)
    assert (config.failure_detection.max_rapid_failures, config.failure_detection.rapid_failure_window) == (5, 60)
    root = config.build()
    assert type(root) is Composite and root.children == {}
    # Sections written empty are sections not given.
    assert load("metadata: {name: bench}\ntls:\ngrpcOptions:\nhooks:\nexport:\n").build().children == {}


def test_a_config_made_in_python_builds_with_the_same_checks() -> None:
    config = ExporterConfig(
        metadata=ObjectMeta(name="bench"), export={"lamp": {"type": f"{HERE}.Lamp"}, "light": {"ref": "lamp"}}
    )
    root = config.build()
    assert root.children["light"] is root.children["lamp"]
    broken = ExporterConfig(metadata=ObjectMeta(name="bench"), export={"light": {"ref": "lamp"}})
    with pytest.raises(ConfigError, match=r"^<ExporterConfig>:1:1: at export\.light\.ref: ref 'lamp' of 'light'"):
        broken.build()


# -- mistakes in the file -------------------------------------------------------------------------


def test_text_that_is_not_yaml() -> None:
    assert load_error("metadata: {name: bench}\nexport: [unclosed\n")[0].startswith("exporter.yaml:3:1: not valid YAML")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("- a\n- b\n", "not a list"),
        ("just words\n", "not 'just words'"),
        ("", "not empty"),
    ],
)
def test_a_config_that_is_not_a_mapping(text: str, problem: str) -> None:
    first, _ = load_error(text)
    assert first == f"exporter.yaml:1:1: an exporter configuration is a mapping, {problem}"


def test_a_path_may_be_a_str(tmp_path: Path) -> None:
    (tmp_path / "exporter.yaml").write_text("metadata: {name: bench}\n")
    assert load_exporter_config(str(tmp_path / "exporter.yaml")).metadata.name == "bench"


def test_a_file_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.yaml: cannot be read: No such file or directory"):
        load_exporter_config(tmp_path / "missing.yaml")


def test_errors_name_the_file_they_are_in(tmp_path: Path) -> None:
    path = tmp_path / "bench.yaml"
    path.write_text("metadata: {name: bench}\nexport:\n  lamp: {typo: 1}\n")
    with pytest.raises(ConfigError) as raised:
        load_exporter_config(path)
    assert split(raised.value)[0] == f"{path}:3:10: at export.lamp.typo: unknown key 'typo' in entry 'lamp'"


def test_another_api_version() -> None:
    first, fix = load_error("apiVersion: jumpstarter.dev/v1beta1\nmetadata: {name: bench}\n")
    assert first == (
        "exporter.yaml:1:13: at apiVersion: apiVersion is 'jumpstarter.dev/v1beta1', "
        "a version this jumpstarter does not read"
    )
    assert fix == "use apiVersion: jumpstarter.dev/v1alpha1"


def test_another_kind() -> None:
    first, fix = load_error("apiVersion: jumpstarter.dev/v1alpha1\nkind: ClientConfig\nmetadata: {name: bench}\n")
    assert first == "exporter.yaml:2:7: at kind: kind is 'ClientConfig' (a client's configuration?), not ExporterConfig"
    assert fix == "use kind: ExporterConfig"


@pytest.mark.parametrize(
    ("text", "location", "suggestion"),
    [
        (
            "metadata: {name: bench}\nexports: {}\n",
            "exporter.yaml:2:1: at exports: unknown key 'exports' at the top level",
            "did you mean 'export'? the keys allowed: apiVersion, kind, metadata, endpoint, token, tls, grpcOptions, "
            "description, hooks, failureDetection, export",
        ),
        (
            "metadata: {name: bench}\ngrpc_options: {}\n",
            "exporter.yaml:2:1: at grpc_options: unknown key 'grpc_options' at the top level",
            "did you mean 'grpcOptions'?",
        ),
        (
            "metadata: {name: bench, namspace: lab}\n",
            "exporter.yaml:1:25: at metadata.namspace: unknown key 'namspace' in metadata",
            "did you mean 'namespace'? the keys allowed: namespace, name",
        ),
        (
            "metadata: {name: bench}\ntls: {ca: '', insecure: false, verify: true}\n",
            "exporter.yaml:2:32: at tls.verify: unknown key 'verify' in tls",
            "the keys allowed: ca, insecure",
        ),
        (
            "metadata: {name: bench}\nhooks:\n  beforeLease:\n    scirpt: j power on\n",
            "exporter.yaml:4:5: at hooks.beforeLease.scirpt: unknown key 'scirpt' in hooks.beforeLease",
            "did you mean 'script'? the keys allowed: script, timeout, onFailure, exec",
        ),
        (
            "metadata: {name: bench}\nhooks:\n  beforeLeases: {script: x}\n",
            "exporter.yaml:3:3: at hooks.beforeLeases: unknown key 'beforeLeases' in hooks",
            "did you mean 'beforeLease'? the keys allowed: beforeLease, afterLease",
        ),
        (
            "metadata: {name: bench}\nfailureDetection: {maxFailures: 3}\n",
            "exporter.yaml:2:20: at failureDetection.maxFailures: unknown key 'maxFailures' in failureDetection",
            "did you mean 'maxRapidFailures'?",
        ),
        (
            "metadata: {name: bench}\nexport:\n  dut:\n    chidren: {}\n",
            "exporter.yaml:4:5: at export.dut.chidren: unknown key 'chidren' in entry 'dut'",
            "did you mean 'children'? the keys allowed: type, description, methods_description, config, children, ref",
        ),
        (
            "metadata: {name: bench}\nexport:\n  dut:\n    children:\n      power: {Type: Composite}\n",
            "exporter.yaml:5:15: at export.dut.children.power.Type: unknown key 'Type' in entry 'dut.power'",
            "did you mean 'type'?",
        ),
    ],
)
def test_unknown_keys_are_pointed_at_with_the_closest_allowed_key(text: str, location: str, suggestion: str) -> None:
    first, fix = load_error(text)
    assert first == location
    assert fix.startswith(suggestion)


def test_an_unquoted_on_is_a_boolean_to_yaml() -> None:
    first, fix = load_error(
        """
        metadata: {name: bench}
        export:
          power:
            type: Composite
            methods_description:
              on: Switch it on
        """
    )
    assert first == "exporter.yaml:6:7: at export.power.methods_description[True]: the method name True is not text"
    assert fix == 'YAML reads an unquoted on, off, yes or no as true or false: quote it ("on": ...)'
    config = load('metadata: {name: bench}\nexport:\n  power: {type: Composite, methods_description: {"on": x}}\n')
    assert config.build().children["power"].methods_description == {"on": "x"}


@pytest.mark.parametrize(
    ("text", "location", "fix"),
    [
        ("kind: ExporterConfig\n", "exporter.yaml:1:1: metadata is missing", "add metadata: at the top level"),
        (
            "metadata:\n  namespace: lab\n",
            "exporter.yaml:2:3: at metadata: metadata.name is missing",
            "add name: under metadata:",
        ),
        (
            "metadata: {name: [bench]}\n",
            "exporter.yaml:1:18: at metadata.name: metadata.name is ['bench']: Input should be a valid string",
            "name takes a Kubernetes name: lowercase letters, digits, '-' and '.', starting and ending with a letter "
            "or a digit, at most 253 characters (such as bench-3)",
        ),
        (
            "metadata: {name: bench}\nhooks:\n  afterLease: {script: x, timeout: soon}\n",
            "exporter.yaml:3:36: at hooks.afterLease.timeout: hooks.afterLease.timeout is 'soon': "
            "Input should be a valid integer, unable to parse string as an integer",
            "timeout takes a whole number of seconds above 0 (120 when left out)",
        ),
        (
            "metadata: {name: bench}\nhooks:\n  afterLease: {script: x, onFailure: stop}\n",
            "exporter.yaml:3:38: at hooks.afterLease.onFailure: hooks.afterLease.onFailure is 'stop': "
            "Input should be 'warn', 'endLease' or 'exit'",
            "onFailure takes one of 'warn', 'endLease', 'exit'",
        ),
        (
            "metadata: {name: bench}\nhooks: {beforeLease: j power on}\n",
            "exporter.yaml:2:22: at hooks.beforeLease: hooks.beforeLease is 'j power on': "
            "Input should be a valid dictionary or instance of HookConfig",
            "beforeLease is a mapping of script, timeout, onFailure, exec",
        ),
        (
            "metadata: {name: bench}\ngrpcConfig: {grpc.keepalive_time_ms: [1]}\n",
            "exporter.yaml:2:38: at grpcConfig.grpc.keepalive_time_ms: grpcConfig.grpc.keepalive_time_ms is [1]: "
            "Input should be a valid string",
            "grpcOptions takes dict[str, str | int]",
        ),
    ],
)
def test_top_level_values_are_checked(text: str, location: str, fix: str) -> None:
    assert load_error(text) == (location, fix)


def test_grpc_options_under_two_names() -> None:
    first, fix = load_error("metadata: {name: bench}\ngrpcOptions: {}\ngrpcConfig: {}\n")
    assert first == "exporter.yaml:3:1: at grpcConfig: grpcConfig and grpcOptions are two names of the same settings"
    assert fix == "keep grpcOptions: and move what grpcConfig: holds into it"


def test_export_that_is_not_a_mapping() -> None:
    first, _ = load_error("metadata: {name: bench}\nexport:\n  - power\n")
    assert first == "exporter.yaml:3:3: at export: export is a list, not a mapping of entry names to entries"


@pytest.mark.parametrize(
    ("entry", "location"),
    [
        ("power: Composite", "exporter.yaml:3:10: at export.power: entry 'power' is 'Composite', not a mapping"),
        ("power:", "exporter.yaml:3:3: at export.power: entry 'power' is empty, not a mapping"),
        ("1: {type: Composite}", "exporter.yaml:3:3: at export[1]: the entry name 1 is not text"),
    ],
)
def test_an_entry_that_is_not_a_mapping(entry: str, location: str) -> None:
    assert load_error(f"metadata: {{name: bench}}\nexport:\n  {entry}\n")[0] == location


def test_an_entry_with_no_type_children_or_ref() -> None:
    first, fix = load_error("metadata: {name: bench}\nexport:\n  power:\n    description: Main power\n")
    assert first == "exporter.yaml:3:3: at export.power: entry 'power' has no type:, children: or ref:"
    assert fix.startswith("add type: <driver> for a driver, children: for a group of entries, or ref: <entry>")


def test_config_without_type() -> None:
    first, fix = load_error("metadata: {name: bench}\nexport:\n  power:\n    children: {}\n    config: {a: 1}\n")
    assert first == (
        "exporter.yaml:5:5: at export.power.config: entry 'power' has config: but no type: to say which driver it "
        "configures"
    )
    assert fix == "add type: <driver>, or remove config:"


@pytest.mark.parametrize("other", ["type: Composite", "config: {}", "children: {}", "description: x"])
def test_a_ref_takes_nothing_else(other: str) -> None:
    key = other.split(":")[0]
    first, fix = load_error(f"metadata: {{name: bench}}\nexport:\n  a: {{type: Composite}}\n  b: {{ref: a, {other}}}\n")
    assert first == f"exporter.yaml:4:15: at export.b.{key}: entry 'b' has both ref: and {key}:"
    assert fix.endswith(f"remove {key}:, or remove ref: to declare a driver of its own")


@pytest.mark.parametrize("ref", ["''", "a..b", "[a]"])
def test_a_ref_that_is_not_a_dotted_path(ref: str) -> None:
    first, _ = load_error(f"metadata: {{name: bench}}\nexport:\n  a: {{ref: {ref}}}\n")
    assert first.startswith("exporter.yaml:3:12: at export.a.ref: ref ")
    assert first.endswith(" is not a dotted path of entry names")


# -- mistakes in refs -----------------------------------------------------------------------------

REFS = """
metadata: {{name: bench}}
export:
  power: {{type: Composite}}
  dut:
    children:
      console: {{type: Composite}}
      {alias}
"""


@pytest.mark.parametrize(
    ("alias", "location", "fix"),
    [
        (
            "extra: {ref: pwer}",
            "exporter.yaml:7:20: at export.dut.children.extra.ref: ref 'pwer' of 'dut.extra' leads nowhere: "
            "no 'pwer' at the top of export",
            "did you mean 'power'? the entries there: power, dut",
        ),
        (
            "extra: {ref: dut.serial}",
            "exporter.yaml:7:20: at export.dut.children.extra.ref: ref 'dut.serial' of 'dut.extra' leads nowhere: "
            "no 'serial' under 'dut'",
            "the entries there: console, extra",
        ),
        (
            "extra: {ref: power.switch}",
            "exporter.yaml:7:20: at export.dut.children.extra.ref: ref 'power.switch' of 'dut.extra' leads nowhere: "
            "no 'switch' under 'power'",
            "'power' has no children",
        ),
    ],
)
def test_a_ref_to_nothing_says_what_is_there(alias: str, location: str, fix: str) -> None:
    assert load_error(REFS.format(alias=alias)) == (location, fix)


def test_a_ref_to_itself() -> None:
    first, fix = load_error("metadata: {name: bench}\nexport:\n  power: {ref: power}\n")
    assert first == "exporter.yaml:3:16: at export.power.ref: 'power' refers to itself (ref: power)"
    assert fix == "point ref: at an entry that is a driver (one with type: or children:)"


def test_refs_that_go_round_in_a_circle() -> None:
    first, _ = load_error(REFS.format(alias="extra: {ref: main}") + "  main: {ref: dut.extra}\n")
    assert first == (
        "exporter.yaml:7:20: at export.dut.children.extra.ref: "
        "the refs go round in a circle: dut.extra -> main -> dut.extra"
    )


def test_an_alias_of_its_own_ancestor() -> None:
    first, fix = load_error(REFS.format(alias="extra: {ref: dut}"))
    assert first == (
        "exporter.yaml:7:20: at export.dut.children.extra.ref: ref 'dut' of 'dut.extra' names 'dut', "
        "which contains 'dut.extra' itself"
    )
    assert fix == "an alias cannot stand for its own ancestor (the tree would never end): point it outside 'dut'"


def test_aliases_that_lead_back_to_an_ancestor() -> None:
    first, _ = load_error(
        REFS.format(alias="extra: {ref: power}").replace(
            "power: {type: Composite}", "power:\n    children: {loop: {ref: dut}}"
        )
    )
    assert first == (
        "exporter.yaml:8:20: at export.dut.children.extra.ref: the refs make 'power' contain itself: "
        "power -> power.loop (ref dut) -> dut.extra (ref power)"
    )


# -- mistakes found by build() --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_name", "problem"),
    [
        ("Compostie", "no installed driver is called 'Compostie'; did you mean 'Composite'?"),
        (
            "jumpstarter_driver_nothing.driver.Thing",
            "'jumpstarter_driver_nothing.driver.Thing' names module 'jumpstarter_driver_nothing.driver', "
            "which is not installed, and no installed driver package takes that path as an alias; "
            + install_hint("jumpstarter-driver-nothing"),
        ),
        (
            "jumpstarter.client.DriverClient",
            "'jumpstarter.client.DriverClient' is <class 'jumpstarter.client.base.DriverClient'>, not a Driver class",
        ),
    ],
)
def test_an_unknown_driver_type(type_name: str, problem: str) -> None:
    first, fix = build_error(
        f"metadata: {{name: bench}}\nexport:\n  dut:\n    children:\n      power: {{type: {type_name}}}\n"
    )
    assert first == f"exporter.yaml:5:21: at export.dut.children.power.type: {problem}"
    assert fix.startswith("type names a driver class: an installed driver's name (`jmp driver list`)")


def test_a_name_that_two_distributions_register(site: Callable[..., None]) -> None:
    site("acme-relays", "Relay = acme_relays.driver:Relay")
    site("other-relays", "Relay = other_relays.driver:Relay")
    first, _ = build_error("metadata: {name: bench}\nexport:\n  relay: {type: Relay}\n")
    assert first == (
        "exporter.yaml:3:17: at export.relay.type: 'Relay' is registered by more than one distribution; "
        "name one of: acme-relays:Relay, other-relays:Relay"
    )
    relay = load("metadata: {name: bench}\nexport:\n  relay: {type: 'other-relays:Relay'}\n").build().children["relay"]
    assert type(relay).__module__ == "other_relays.driver"


def test_a_driver_module_that_fails_to_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "broken_driver_module.py").write_text("raise RuntimeError('no libusb')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    first, _ = build_error("metadata: {name: bench}\nexport:\n  usb: {type: broken_driver_module.Usb}\n")
    assert first == (
        "exporter.yaml:3:15: at export.usb.type: importing 'broken_driver_module' for 'broken_driver_module.Usb' "
        "failed: RuntimeError: no libusb"
    )


LAMP = f"""
metadata: {{name: bench}}
export:
  lamp:
    type: {HERE}.Lamp
    config: CONFIG
"""


def lamp_with(config: str) -> str:
    return LAMP.replace("CONFIG", config)


@pytest.mark.parametrize(
    ("config", "location", "fix"),
    [
        (
            "{watts: bright}",
            "exporter.yaml:5:21: at export.lamp.config.watts: watts of Lamp is 'bright': "
            "Input should be a valid integer, unable to parse string as an integer",
            "watts takes int",
        ),
        (
            "{watts: 7.5}",
            "exporter.yaml:5:21: at export.lamp.config.watts: watts of Lamp is 7.5: "
            "Input should be a valid integer, got a number with a fractional part",
            "watts takes int",
        ),
        (
            "{colour: 12}",
            "exporter.yaml:5:22: at export.lamp.config.colour: colour of Lamp is 12: Input should be a valid string",
            "colour takes str",
        ),
        (
            "{tags: [desk, [x]]}",
            "exporter.yaml:5:27: at export.lamp.config.tags[1]: tags[1] of Lamp is ['x']: "
            "Input should be a valid string",
            "tags takes list[str]",
        ),
        (
            "{labels: {rev: [2]}}",
            "exporter.yaml:5:28: at export.lamp.config.labels.rev: labels.rev of Lamp is [2]: "
            "Input should be a valid string",
            "labels takes dict[str, str]",
        ),
    ],
)
def test_a_config_value_of_the_wrong_type(config: str, location: str, fix: str) -> None:
    assert build_error(lamp_with(config)) == (location, fix)


def test_a_literal_setting_lists_its_choices() -> None:
    first, fix = build_error(
        f"metadata: {{name: bench}}\nexport:\n  s:\n    type: {HERE}.Settings\n    config:\n      mode: medium\n"
    )
    assert (
        first
        == "exporter.yaml:6:13: at export.s.config.mode: mode of Settings is 'medium': Input should be 'fast' or 'slow'"
    )
    assert fix == "mode takes one of 'fast', 'slow'"


def test_an_unknown_config_key_lists_the_settings() -> None:
    first, fix = build_error(lamp_with("{wats: 100}"))
    assert first == "exporter.yaml:5:14: at export.lamp.config.wats: unknown key 'wats' in the config of Lamp"
    assert fix == "did you mean 'watts'? the keys allowed: watts, colour, tags, labels, log_level"


@pytest.mark.parametrize(
    ("key", "fix"),
    [
        ("uuid", "the exporter gives every driver a new uuid; remove it"),
        ("children", "write children: next to config:, in the entry itself"),
        ("description", "write description: next to config:, in the entry itself"),
        ("methods_description", "write methods_description: next to config:, in the entry itself"),
        ("logger", "it is the driver's own state; set log_level instead"),
    ],
)
def test_fields_that_config_does_not_set(key: str, fix: str) -> None:
    assert build_error(lamp_with(f"{{{key}: x}}")) == (
        f"exporter.yaml:5:14: at export.lamp.config.{key}: {key!r} is not set through config:",
        fix,
    )


def test_a_missing_required_setting() -> None:
    text = f"metadata: {{name: bench}}\nexport:\n  console:\n    type: {HERE}.Serial\n"
    first, fix = build_error(text)
    # There is no config: to point at, so the entry is.
    assert first == "exporter.yaml:3:3: at export.console: Serial needs 'device' in the config of entry 'console'"
    assert fix == "add device: <str> under config:"
    first, _ = build_error(text + "    config: {baudrate: 9600}\n")
    assert first.startswith("exporter.yaml:5:13: at export.console.config: Serial needs 'device'")


def test_a_constructor_that_raises_names_the_class_the_entry_and_the_error() -> None:
    text = f"""
    metadata: {{name: bench}}
    export:
      lamp: {{type: {HERE}.Lamp}}
      dut:
        children:
          console:
            type: {HERE}.Missing
            config: {{device: /dev/ttyACM3}}
    """
    first, fix = build_error(text)
    assert first == (
        f"exporter.yaml:6:7: at export.dut.children.console: creating {HERE}.Missing for entry 'dut.console' failed: "
        "FileNotFoundError: no such device: /dev/ttyACM3"
    )
    assert fix.startswith("check the entry's config:")
    # The lamp made before it may hold hardware: the failed build closed it.
    assert len(Lamp.made) == 1 and Lamp.made[0].closes == 1


def test_build_checks_every_entry_before_making_any_driver() -> None:
    first, _ = build_error(
        f"metadata: {{name: bench}}\nexport:\n  lamp: {{type: {HERE}.Lamp}}\n  x: {{type: Nothing}}\n"
    )
    assert first.startswith("exporter.yaml:4:13: at export.x.type: no installed driver is called 'Nothing'")
    assert Lamp.made == []


def test_load_needs_no_driver_but_build_does() -> None:
    config = load("metadata: {name: bench}\nexport:\n  power: {type: jumpstarter_driver_nothing.driver.Power}\n")
    assert config.export == {"power": {"type": "jumpstarter_driver_nothing.driver.Power"}}
    with pytest.raises(ConfigError, match="pip install --find-links DIST jumpstarter-driver-nothing"):
        config.build()


def test_an_entry_written_twice_is_an_error_not_a_loss() -> None:
    with pytest.raises(ConfigError) as raised:
        parse_exporter_config(
            "metadata: {name: bench}\nexport:\n  lamp: {ref: x}\n  lamp: {ref: y}\n", name="twice.yaml"
        )
    assert str(raised.value) == "twice.yaml:4:3: at export.lamp: 'lamp' appears twice; keep one"


def test_settings_annotated_on_a_class_that_is_not_a_dataclass() -> None:
    first, fix = build_error(
        f"metadata: {{name: bench}}\nexport:\n  t: {{type: {HERE}.Thermometer, config: {{celsius: no}}}}\n"
    )
    assert first == (
        f"exporter.yaml:3:{len(HERE) + 36}: at export.t.config.celsius: 'celsius' is annotated in Thermometer, "
        "but Thermometer is not a dataclass, so its annotations are no settings of Thermometer"
    )
    assert fix.startswith("decorate Thermometer with @dataclass(kw_only=True) (from dataclasses import dataclass)")
    # Its other keys are unknown as before.
    first, fix = build_error(
        f"metadata: {{name: bench}}\nexport:\n  t: {{type: {HERE}.Thermometer, config: {{kelvin: 1}}}}\n"
    )
    assert first.endswith("unknown key 'kelvin' in the config of Thermometer")


def test_a_driver_dataclass_without_kw_only_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "positional_driver.py").write_text(
        "from dataclasses import dataclass\n"
        "from jumpstarter.driver import Driver\n"
        "@dataclass\n"
        "class Probe(Driver):\n"
        "    port: int = 0\n"
        "    device: str\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    first, _ = build_error("metadata: {name: bench}\nexport:\n  probe: {type: positional_driver.Probe}\n")
    assert "TypeError: non-default argument 'device' follows default argument" in first
    assert first.endswith("; declare the driver class with @dataclass(kw_only=True)")


# -- metadata: Kubernetes names ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["bench", "bench-3", "lab.bench-3", "3", "a" * 253])
def test_kubernetes_names_are_accepted(name: str) -> None:
    assert load(f"metadata: {{name: '{name}', namespace: lab-a}}\n").metadata.name == name


@pytest.mark.parametrize(
    ("metadata", "location", "problem"),
    [
        ("{name: ../..}", "1:18: at metadata.name", "metadata.name is '../..': not a Kubernetes name (it has '/')"),
        ("{name: /etc}", "1:18: at metadata.name", "not a Kubernetes name (it has '/'); 'etc' would be one"),
        ("{name: Bench_3}", "1:18: at metadata.name", "(it has uppercase letters and '_'); 'bench-3' would be one"),
        ("{name: .hidden}", "1:18: at metadata.name", "(it must start and end with a letter or a digit)"),
        ("{name: ''}", "1:18: at metadata.name", "metadata.name is '': an empty name"),
        (f"{{name: {'a' * 254}}}", "1:18: at metadata.name", "254 characters long, more than a Kubernetes name"),
        ("{name: bench, namespace: lab.a}", "1:36: at metadata.namespace", "(it has '.'); 'lab-a' would be one"),
    ],
)
def test_names_that_are_not_kubernetes_names(metadata: str, location: str, problem: str) -> None:
    first, fix = load_error(f"metadata: {metadata}\n")
    assert first.startswith(f"exporter.yaml:{location}: ") and problem in first
    assert fix.startswith(("name takes a Kubernetes name:", "namespace takes a Kubernetes namespace:"))


def test_a_name_made_in_python_is_checked_too() -> None:
    with pytest.raises(ValueError, match="not a Kubernetes name"):
        ObjectMeta(name="../../etc")


# -- the settings for a lab -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "location", "fix"),
    [
        (
            "endpoint: https://grpc.lab.example.com\n",
            "exporter.yaml:2:11: at endpoint: endpoint is 'https://grpc.lab.example.com': "
            "a gRPC address has no scheme: write grpc.lab.example.com",
            "endpoint takes the controller's gRPC address, HOST:PORT (such as grpc.lab.example.com:443)",
        ),
        (
            "endpoint: grpc.lab.example.com:http\n",
            "exporter.yaml:2:11: at endpoint: endpoint is 'grpc.lab.example.com:http': not HOST:PORT",
            "endpoint takes the controller's gRPC address",
        ),
        (
            "tls: {ca: '-----BEGIN CERTIFICATE-----'}\n",
            "exporter.yaml:2:11: at tls.ca: tls.ca is '-----BEGIN CERTIFICATE-----': not base64: write the base64 "
            "of the PEM file",
            "ca takes the base64 of the PEM certificates to trust, as `base64 -w0 ca.crt` prints it",
        ),
        (
            "tls: {ca: aGVsbG8=}\n",
            "exporter.yaml:2:11: at tls.ca: tls.ca is 'aGVsbG8=': its base64 holds no PEM certificate "
            "(-----BEGIN CERTIFICATE-----)",
            "ca takes the base64",
        ),
        (
            "hooks: {beforeLease: {script: j power on, timeout: 0}}\n",
            "exporter.yaml:2:52: at hooks.beforeLease.timeout: hooks.beforeLease.timeout is 0: "
            "Input should be greater than 0",
            "timeout takes a whole number of seconds above 0",
        ),
        (
            "hooks: {afterLease: {script: ''}}\n",
            "exporter.yaml:2:30: at hooks.afterLease.script: hooks.afterLease.script is '': "
            "String should have at least 1 character",
            "script takes the script: inline text, or the path of a script file",
        ),
    ],
)
def test_the_settings_for_a_lab_are_checked(text: str, location: str, fix: str) -> None:
    first, fixed = load_error("metadata: {name: bench}\n" + text)
    assert first == location
    assert fixed.startswith(fix)


def test_a_ca_in_the_original_form_loads() -> None:
    pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    ca = __import__("base64").b64encode(pem).decode()
    assert load(f"metadata: {{name: bench}}\ntls: {{ca: {ca}}}\n").tls.ca == ca


def test_the_settings_for_a_lab_that_a_file_writes() -> None:
    assert lab_settings(load_exporter_config(CONFIGS / "all-keys.yaml")) == [
        "endpoint",
        "token",
        "tls",
        "grpcOptions",
        "hooks",
        "failureDetection",
    ]
    assert lab_settings(load_exporter_config(CONFIGS / "original-docs.yaml")) == ["endpoint", "token", "grpcConfig"]
    # Empty sections have nothing to use.
    assert lab_settings(load("metadata: {name: bench}\ntls:\ngrpcOptions: {}\nhooks: {}\n")) == []


def test_local_mode_names_the_settings_it_does_not_use_in_one_line() -> None:
    note = local_mode_note(load_exporter_config(CONFIGS / "original-docs.yaml"))
    assert note == (
        f"{CONFIGS / 'original-docs.yaml'}: endpoint, token and grpcConfig are not used in local mode: "
        "they are for an exporter in a lab"
    )
    assert local_mode_note(load("metadata: {name: bench}\nhooks: {afterLease: {script: x}}\n")) == (
        "exporter.yaml: hooks is not used in local mode: they are for an exporter in a lab"
    )
    assert local_mode_note(load("metadata: {name: bench}\n")) is None


@pytest.mark.parametrize(
    ("text", "location", "fix"),
    [
        (
            "endpoint: grpc.lab.example.com:443\n",
            "exporter.yaml:2:1: at endpoint: an exporter that joins a lab (endpoint:) needs the token the "
            "controller issued it",
            "add token:",
        ),
        (
            "token: secret\n",
            "exporter.yaml:2:1: at token: token (the exporter's credential for a lab controller) would never be "
            "used: this configuration has no endpoint",
            "add endpoint: (the controller's HOST:PORT) to join a lab, or remove token:",
        ),
        (
            "grpcConfig: {grpc.keepalive_time_ms: 20000}\n",
            "exporter.yaml:2:1: at grpcConfig: grpcConfig (options of the channel to a lab controller) would never "
            "be used: this configuration has no endpoint",
            "add endpoint:",
        ),
        (
            "hooks:\n  beforeLease: {script: j power on}\n",
            "exporter.yaml:2:1: at hooks: hooks (scripts run around each lease that a lab controller grants) would "
            "never be used: this configuration has no endpoint",
            "add endpoint:",
        ),
        (
            "endpoint: grpc.lab.example.com:443\ntoken: t\nfailureDetection: {maxRapidFailures: 3}\n",
            "exporter.yaml:4:1: at failureDetection: failureDetection tunes how the original's exporter restarts "
            "itself; this one does not restart itself (it reconnects to its controller for as long as it takes)",
            "remove failureDetection:, and let a service manager restart the exporter",
        ),
    ],
)
def test_serving_refuses_the_settings_it_does_not_use(text: str, location: str, fix: str) -> None:
    config = load("metadata: {name: bench}\n" + text)
    with pytest.raises(ConfigError) as raised:
        check_for_serving(config)
    first, fixed = split(raised.value)
    assert first == location
    assert fixed.startswith(fix)


def test_serving_takes_a_config_without_them() -> None:
    check_for_serving(load("metadata: {name: bench}\ntls:\nhooks: {}\nexport: {a: {type: Composite}}\n"))


def test_serving_in_a_lab_takes_the_settings_for_a_lab() -> None:
    check_for_serving(
        load(
            "metadata: {name: bench}\nendpoint: lab.example.com:443\ntoken: t\ntls: {ca: ''}\n"
            "grpcOptions: {grpc.keepalive_time_ms: 20000}\nhooks: {beforeLease: {script: 'true'}}\n"
        )
    )
