"""Every public driver class of the workspace's packages is registered as an entry point."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import tomllib
from pathlib import Path

import pytest

from jumpstarter.driver import Driver
from jumpstarter.registry import ENTRY_POINT_GROUP

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = sorted(path for path in (ROOT / "packages").iterdir() if (path / "pyproject.toml").exists())


def public_driver_classes(package_dir: Path) -> set[str]:
    """``module:Class`` of the concrete, public Driver subclasses defined in a package's modules."""
    found = set()
    for top in (package_dir / "src").iterdir():
        if not (top / "__init__.py").exists():
            continue
        for module_info in pkgutil.walk_packages([str(top)], prefix=f"{top.name}."):
            if module_info.name.startswith(f"{top.name}.v1") or ".tests" in module_info.name:
                continue
            module = importlib.import_module(module_info.name)
            for name, value in vars(module).items():
                if (
                    inspect.isclass(value)
                    and issubclass(value, Driver)
                    and value is not Driver
                    and value.__module__ == module.__name__
                    and not name.startswith("_")
                    and not inspect.isabstract(value)
                ):
                    found.add(f"{module.__name__}:{name}")
    return found


@pytest.mark.parametrize("package_dir", PACKAGES, ids=lambda path: path.name)
def test_public_drivers_have_entry_points(package_dir: Path) -> None:
    project = tomllib.loads((package_dir / "pyproject.toml").read_text())["project"]
    registered = set(project.get("entry-points", {}).get(ENTRY_POINT_GROUP, {}).values())
    missing = public_driver_classes(package_dir) - registered
    assert not missing, f'register these in [project.entry-points."{ENTRY_POINT_GROUP}"]: {sorted(missing)}'


@pytest.mark.parametrize("package_dir", PACKAGES, ids=lambda path: path.name)
def test_entry_points_load_driver_classes(package_dir: Path) -> None:
    project = tomllib.loads((package_dir / "pyproject.toml").read_text())["project"]
    for name, value in project.get("entry-points", {}).get(ENTRY_POINT_GROUP, {}).items():
        module_name, _, class_name = value.partition(":")
        driver_class = getattr(importlib.import_module(module_name), class_name)
        assert issubclass(driver_class, Driver), f"{name} = {value!r} is not a Driver class"
        assert name == class_name, f"entry point {name!r} should be named after its class {class_name!r}"


def test_an_unregistered_driver_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "src" / "unregistered_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "drivers.py").write_text(
        "from jumpstarter.driver import Driver\n"
        "class Relay(Driver):\n    @classmethod\n    def client(cls): return 'x.Client'\n"
        "class _Private(Relay): pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    assert public_driver_classes(tmp_path) == {"unregistered_pkg.drivers:Relay"}
