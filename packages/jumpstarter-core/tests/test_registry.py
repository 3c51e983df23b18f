"""Installed drivers: entry points of distributions, names in configs, `jmp driver list`."""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from jumpstarter import registry
from jumpstarter.cli.jmp import main
from jumpstarter.driver import Composite
from jumpstarter.registry import (
    ALIAS_ENTRY_POINT_GROUP,
    ENTRY_POINT_GROUP,
    DriverNotFound,
    driver_aliases,
    installed_drivers,
    resolve_driver,
)


def test_the_core_registers_composite() -> None:
    (composite,) = [driver for driver in installed_drivers() if driver.name == "Composite"]
    assert (composite.distribution, composite.load()) == ("jumpstarter-core", Composite)
    assert resolve_driver("Composite") is Composite


def test_a_distribution_is_found_by_its_entry_points(site: Callable[..., None]) -> None:
    site("acme-relays", "Relay = acme_relays.driver:Relay")
    relay = resolve_driver("Relay")
    assert relay.__module__ == "acme_relays.driver"
    assert resolve_driver("acme-relays:Relay") is relay
    assert resolve_driver("acme_relays:Relay") is relay  # either spelling of the distribution
    assert resolve_driver("acme_relays.driver.Relay") is relay


def test_two_distributions_with_one_name_must_be_told_apart(site: Callable[..., None]) -> None:
    site("acme-relays", "Relay = acme_relays.driver:Relay")
    site("other-relays", "Relay = other_relays.driver:Relay")
    with pytest.raises(DriverNotFound, match="'Relay' is registered by more than one distribution") as raised:
        resolve_driver("Relay")
    assert "acme-relays:Relay, other-relays:Relay" in str(raised.value)
    assert resolve_driver("other-relays:Relay").__module__ == "other_relays.driver"


@pytest.mark.parametrize(
    ("type_name", "message"),
    [
        ("Compostie", "no installed driver is called 'Compostie'; did you mean 'Composite'?"),
        (
            "Nothing",
            "no installed driver is called 'Nothing'; `jmp driver list` shows the installed drivers, and a driver "
            "package is usually named after its drivers, jumpstarter-driver-<name>: install it with: "
            "pip install --find-links DIST jumpstarter-driver-<name>",
        ),
        (
            "nope-dist:Composite",
            "no installed driver is called 'nope-dist:Composite': no installed distribution 'nope-dist' registers "
            "drivers; install it with: pip install --find-links DIST nope-dist",
        ),
        ("jumpstarter-core:Compsite", "did you mean jumpstarter-core:Composite?"),
        ("missing_pkg.driver.Thing", "names module 'missing_pkg.driver', which is not installed"),
        ("jumpstarter.driver.Compsite", "module 'jumpstarter.driver' has no 'Compsite'"),
        ("jumpstarter.client.DriverClient", "is <class 'jumpstarter.client.base.DriverClient'>, not a Driver class"),
    ],
)
def test_names_of_no_driver_say_what_to_do(type_name: str, message: str) -> None:
    with pytest.raises(DriverNotFound, match=message.replace("(", r"\(").replace(")", r"\)").replace("?", r"\?")):
        resolve_driver(type_name)


def test_jmp_driver_list_shows_every_distribution(site: Callable[..., None]) -> None:
    site("acme-relays", "Relay = acme_relays.driver:Relay")
    site("broken-drivers", "Broken = broken_drivers.driver:Missing")
    result = CliRunner().invoke(main, ["driver", "list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["NAME", "CLASS", "DISTRIBUTION", "VERSION", "DESCRIPTION"]
    relay = next(line for line in lines if line.startswith("Relay "))
    assert relay.split()[:4] == ["Relay", "acme_relays.driver.Relay", "acme-relays", "1.2.3"]
    assert relay.endswith("A relay board of acme-relays.")
    broken = next(line for line in lines if line.startswith("Broken "))
    assert "(cannot be imported: AttributeError" in broken

    rows = json.loads(CliRunner().invoke(main, ["driver", "list", "--json"]).output)
    assert {"name": "Composite", "class": "jumpstarter.driver.composite.Composite"}.items() <= rows[
        [row["name"] for row in rows].index("Composite")
    ].items()


def test_a_driver_module_that_fails_on_import_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "exploding_driver.py").write_text("raise RuntimeError('no such board revision')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    message = r"importing .exploding_driver. for .* failed: RuntimeError: no such board"
    with pytest.raises(DriverNotFound, match=message):
        resolve_driver("exploding_driver.Relay")


@pytest.fixture
def only_the_core(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fresh environment with jumpstarter-core alone: no driver package installed."""
    every = importlib.metadata.entry_points

    def core_only(**selection: str) -> importlib.metadata.EntryPoints:
        return importlib.metadata.EntryPoints(
            entry_point
            for entry_point in every(**selection)
            if entry_point.dist is not None and entry_point.dist.name == "jumpstarter-core"
        )

    monkeypatch.setattr(registry.importlib.metadata, "entry_points", core_only)
    installed_drivers.cache_clear()
    driver_aliases.cache_clear()
    yield
    installed_drivers.cache_clear()
    driver_aliases.cache_clear()


@pytest.mark.usefixtures("only_the_core")
@pytest.mark.parametrize("name", ["MockPower", "UsbHubPower", "PySerial", "TcpNetwork"])
def test_the_core_names_no_driver_distribution(name: str) -> None:
    with pytest.raises(DriverNotFound) as raised:
        resolve_driver(name)
    message = str(raised.value)
    # Found from what is installed and the naming convention, not from a list of our packages in the core.
    assert (
        "jumpstarter-driver-<name>: install it with: pip install --find-links DIST jumpstarter-driver-<name>" in message
    )
    assert "jumpstarter-driver-power" not in message and "comes with" not in message


def test_every_install_hint_comes_from_one_function(site: Callable[..., None], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "install_hint", lambda distribution: f"<how to install {distribution}>")
    messages = []
    for wrong in ("Nothing", "nope-dist:Composite", "acme_missing.driver.Relay"):
        with pytest.raises(DriverNotFound) as raised:
            resolve_driver(wrong)
        messages.append(str(raised.value))
    assert [message.partition("<how to install ")[2] for message in messages] == [
        "jumpstarter-driver-<name>>",
        "nope-dist>",
        "acme-missing>",
    ]
    assert not any("pip" in message for message in messages)


ALIASES = "[jumpstarter.driver_aliases]\n"


def test_a_distribution_declares_the_class_paths_of_another_project(site: Callable[..., None]) -> None:
    site(
        "acme-relays",
        "Relay = acme_relays.driver:Relay\n" + ALIASES + "oldvendor_relays.board.RelayBoard = acme_relays.driver:Relay",
    )
    relay = resolve_driver("Relay")
    assert resolve_driver("oldvendor_relays.board.RelayBoard") is relay
    # A typo of an alias finds it, by its class or by its module.
    for typo in ("oldvendor_relays.board.RelayBord", "oldvendor_relay.board.RelayBoard"):
        with pytest.raises(DriverNotFound, match=r"did you mean 'oldvendor_relays\.board\.RelayBoard'\?$"):
            resolve_driver(typo)
    # A path of that project that no distribution declares says so, and what to install.
    with pytest.raises(DriverNotFound) as raised:
        resolve_driver("oldvendor_relays.board.Dimmer")
    assert str(raised.value) == (
        "'oldvendor_relays.board.Dimmer' names module 'oldvendor_relays.board', which is not installed, and no "
        f"installed driver package takes that path as an alias; {registry.install_hint('oldvendor-relays')}"
    )
    # A path whose class is an installed driver's name says to use that name.
    with pytest.raises(DriverNotFound, match=r"an installed driver has that name: write type: Relay$"):
        resolve_driver("elsewhere.drivers.Relay")


def test_an_alias_that_two_distributions_give_different_drivers(site: Callable[..., None]) -> None:
    site("acme-relays", "Relay = acme_relays.driver:Relay\n" + ALIASES + "old.Relay = acme_relays.driver:Relay")
    site("other-relays", "Relay2 = other_relays.driver:Relay\n" + ALIASES + "old.Relay = other_relays.driver:Relay")
    with pytest.raises(DriverNotFound, match=r"'old.Relay' is an alias of a different driver in each of acme-relays, "):
        resolve_driver("old.Relay")


def test_jmp_driver_list_shows_drivers_not_aliases() -> None:
    result = CliRunner().invoke(main, ["driver", "list", "--json"])
    assert result.exit_code == 0, result.output
    names = [row["name"] for row in json.loads(result.output)]
    assert len(names) == len(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
    assert importlib.metadata.entry_points(group=ALIAS_ENTRY_POINT_GROUP)  # our packages declare some
    assert not any("." in name for name in names)


def test_driver_values_are_read_as_importlib_metadata_reads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The allow-list reads entry points without importlib.metadata (j starts faster): same answer,
    # including a distribution shadowed by another of the same name earlier on the path.
    for directory, value in (("first", "acme_first.driver:Relay"), ("second", "acme_second.driver:Relay")):
        info = tmp_path / directory / "Acme.Relays-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: Acme.Relays\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(
            f"[console_scripts]\nrelay = acme.cli:main\n\n[jumpstarter.drivers]\n# a comment\nRelay = {value}\n"
        )
        monkeypatch.syspath_prepend(str(tmp_path / directory))
    values = registry.installed_driver_values()
    expected = {entry.value for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    assert set(values) == expected
    assert "acme_second.driver:Relay" in values and "acme_first.driver:Relay" not in values
    assert "jumpstarter_driver_power.driver:MockPower" in values
