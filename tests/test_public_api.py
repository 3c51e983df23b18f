"""The public API: docs/reference/api.md lists what each public module exports, and our driver packages
import nothing else of jumpstarter."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "reference" / "api.md"
FIXTURES = "Fixtures of the pytest plugin"
DRIVER_PACKAGES = sorted((ROOT / "packages").glob("jumpstarter-driver-*"))


def documented() -> dict[str, list[str]]:
    """The names in the tables of the page, by section: a module's name, or FIXTURES."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in PAGE.read_text().splitlines():
        if line.startswith("## "):
            heading = line[3:].strip()
            module = re.fullmatch(r"`([\w.]+)`", heading)
            current = found.setdefault(module[1] if module else heading, [])
        elif current is not None and (row := re.match(r"\| `(\w+)` \|", line)):
            current.append(row[1])
    return found


def public_modules() -> set[str]:
    return {name for name in documented() if name.startswith("jumpstarter")}


def test_the_page_lists_the_public_modules() -> None:
    modules = public_modules()
    assert {"jumpstarter.driver", "jumpstarter.client", "jumpstarter.testing"} <= modules
    assert FIXTURES in documented()


@pytest.mark.parametrize("module", sorted(public_modules()))
def test_a_public_module_exports_what_the_page_lists(module: str) -> None:
    imported = importlib.import_module(module)
    listed = documented()[module]
    assert len(listed) == len(set(listed)), f"{module}: a name is listed twice"
    assert sorted(imported.__all__) == sorted(listed), f"{module}: __all__ and docs/reference/api.md differ"
    for name in imported.__all__:
        assert hasattr(imported, name), f"{module}.__all__ names {name}, which it lacks"


def test_the_plugin_s_fixtures_are_the_ones_listed() -> None:
    plugin = importlib.import_module("jumpstarter.pytest_plugin")
    fixtures = {
        name
        for name, value in vars(plugin).items()
        if getattr(value, "_fixture_function_marker", None) is not None
        or type(value).__name__ == "FixtureFunctionDefinition"
    }
    assert fixtures == set(documented()[FIXTURES])


def private_imports(source: str, *, check_names: bool = True) -> list[str]:
    """The imports of jumpstarter in `source` that are not public (modules, and names with `check_names`)."""
    modules = public_modules()
    problems = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top == "jumpstarter" and alias.name != "jumpstarter" and alias.name not in modules:
                    problems.append(f"import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            if node.module.split(".")[0] != "jumpstarter":
                continue
            for alias in node.names:
                if f"{node.module}.{alias.name}" in modules:
                    continue  # a public module, imported from its package
                if node.module not in modules:
                    problems.append(f"from {node.module} import {alias.name}")
                elif check_names and alias.name not in importlib.import_module(node.module).__all__:
                    problems.append(f"from {node.module} import {alias.name} (not in its __all__)")
    return problems


def test_the_check_finds_private_imports() -> None:
    source = (
        "import jumpstarter.common.wire\n"
        "from jumpstarter.client.base import DriverClient\n"
        "from jumpstarter.client import connection\n"
        "def f():\n"
        "    from jumpstarter.streams.channel import ThreadChannel\n"
    )
    assert private_imports(source) == [
        "import jumpstarter.common.wire",
        "from jumpstarter.client.base import DriverClient",
        "from jumpstarter.client import connection (not in its __all__)",
        "from jumpstarter.streams.channel import ThreadChannel",
    ]
    public = (
        "from jumpstarter.client import DriverClient\nfrom jumpstarter.common import tls\nimport jumpstarter.driver\n"
    )
    assert private_imports(public) == []


@pytest.mark.parametrize("package", DRIVER_PACKAGES, ids=lambda package: package.name)
def test_our_driver_packages_use_only_the_public_api(package: Path) -> None:
    problems = []
    for path in sorted((package / "src").rglob("*.py")):
        problems += [f"{path.relative_to(ROOT)}: {problem}" for problem in private_imports(path.read_text())]
    # Their tests too, by module (some of them run against the original jumpstarter, whose names differ).
    for path in sorted((package / "tests").rglob("*.py")):
        found = private_imports(path.read_text(), check_names=False)
        problems += [f"{path.relative_to(ROOT)}: {problem}" for problem in found]
    assert not problems, "imports of jumpstarter's internal modules:\n" + "\n".join(problems)
