"""Installed drivers: entry points of distributions, names in configs, `jmp driver list`."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from jumpstarter.cli.jmp import main
from jumpstarter.driver import Composite
from jumpstarter.registry import DriverNotFound, installed_drivers, resolve_driver


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
        ("Nothing", "`jmp driver list` shows the installed drivers"),
        ("nope-dist:Composite", "no installed driver is called 'nope-dist:Composite'"),
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
