"""`jmp driver new NAME`: start a driver package from the templates in `jumpstarter/templates/driver`."""

from __future__ import annotations

import ast
import builtins
import importlib.metadata
import keyword
import re
import shutil
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from string import Template

import click

# Lowercase words of letters and digits joined by single hyphens, starting with a letter.
NAME_PATTERN = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
DISTRIBUTION_PREFIX = "jumpstarter-driver-"

# Template file (relative to templates/driver) -> generated file (relative to the package root);
# "{package}" stands for the import name.
LAYOUT = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "package/__init__.py.tmpl": "src/{package}/__init__.py",
    "package/driver.py.tmpl": "src/{package}/driver.py",
    "package/client.py.tmpl": "src/{package}/client.py",
    "tests/test_driver.py.tmpl": "tests/test_driver.py",
}


@dataclass(frozen=True)
class DriverNames:
    """The names a driver package derives from its NAME."""

    name: str  # my-relay
    distribution: str  # jumpstarter-driver-my-relay
    package: str  # jumpstarter_driver_my_relay
    cls: str  # MyRelay
    key: str  # my_relay: the driver's key in an exporter config's `export`

    @property
    def classes(self) -> tuple[str, ...]:
        return (self.cls, f"Mock{self.cls}", f"{self.cls}Interface", f"{self.cls}Client")

    def substitutions(self) -> dict[str, str]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "package": self.package,
            "cls": self.cls,
            "key": self.key,
            "core_requirement": _core_requirement(),
        }


def driver_names(name: str) -> DriverNames:
    """Derive the names from NAME; raises click.BadParameter with what to change."""
    if name.startswith(DISTRIBUTION_PREFIX):
        suggestion = name.removeprefix(DISTRIBUTION_PREFIX)
        raise click.BadParameter(f"{name!r}: give the name without the {DISTRIBUTION_PREFIX!r} prefix: {suggestion!r}")
    if not NAME_PATTERN.fullmatch(name):
        raise click.BadParameter(
            f"{name!r} is not a driver name: use lowercase letters, digits and single hyphens, "
            "starting with a letter and not ending with a hyphen (e.g. my-relay)"
        )
    words = name.split("-")
    names = DriverNames(
        name=name,
        distribution=f"{DISTRIBUTION_PREFIX}{name}",
        package=f"jumpstarter_driver_{'_'.join(words)}",
        cls="".join(word[:1].upper() + word[1:] for word in words),
        key="_".join(words),
    )
    taken = _reserved_identifiers()
    for class_name in names.classes:
        if keyword.iskeyword(class_name):
            problem = "a Python keyword"
        elif hasattr(builtins, class_name):
            problem = "a Python builtin"
        elif class_name in taken:
            problem = "a name the generated code imports or uses"
        else:
            continue
        raise click.BadParameter(f"{name!r} would make a class called {class_name!r}, {problem}: choose another name")
    return names


def render(names: DriverNames) -> dict[Path, str]:
    """The generated files, by path relative to the package directory."""
    templates = _templates()
    substitutions = names.substitutions()
    rendered = {}
    for source, target in LAYOUT.items():
        text = templates.joinpath(source).read_text(encoding="utf-8")
        rendered[Path(target.format(package=names.package))] = Template(text).substitute(substitutions)
    return rendered


def create_package(names: DriverNames, directory: Path) -> tuple[Path, list[Path]]:
    """Write the package into `directory`/`names.distribution`; return that path and the files.

    Renders everything before writing anything. `directory` must exist and the package's
    directory must not; if writing fails half-way, what was written is removed.
    """
    rendered = render(names)
    target = directory / names.distribution
    exists = click.ClickException(f"{target} already exists: remove it, or choose another NAME or --directory")
    if not directory.is_dir():
        problem = "is not a directory" if directory.exists() else "does not exist"
        raise click.ClickException(f"{directory} {problem}: --directory names an existing directory")
    if target.exists() or target.is_symlink():
        raise exists
    try:
        target.mkdir()
    except FileExistsError:
        raise exists from None
    except OSError as error:
        raise click.ClickException(f"cannot create {target}: {error.strerror or error}") from None
    try:
        for relative, text in rendered.items():
            path = target / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    except OSError as error:
        shutil.rmtree(target, ignore_errors=True)
        raise click.ClickException(f"cannot write {target}: {error.strerror or error}") from None
    return target, sorted(rendered)


def _names(ctx: click.Context, param: click.Parameter, value: str) -> DriverNames:
    return driver_names(value)


@click.command("new")
@click.argument("name", callback=_names)
@click.option(
    "--directory",
    "-d",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(),
    show_default="the current directory",
    help="Where to create the package's directory (it must exist).",
)
def new_driver(name: DriverNames, directory: Path) -> None:
    """Create the driver package jumpstarter-driver-NAME, ready to test, build and publish.

    NAME is lowercase letters, digits and single hyphens, starting with a letter. The
    package has two drivers, registered as entry points, a client, tests and a README:

    \b
    NAME my-relay makes
      distribution  jumpstarter-driver-my-relay
      package       jumpstarter_driver_my_relay
      drivers       MyRelay (a device on the network), MockMyRelay (for tests)
      client        MyRelayClient
    """
    target, written = create_package(name, directory)
    click.echo(f"Created {target} with the drivers {name.cls} and Mock{name.cls}:")
    for relative in written:
        click.echo(f"  {relative}")
    click.echo("Next, in a virtual environment:")
    click.echo(f"  cd {target}")
    click.echo("  pip install -e . pytest")
    click.echo("  pytest")


def _templates() -> Traversable:
    return files("jumpstarter").joinpath("templates", "driver")


def _reserved_identifiers() -> set[str]:
    """The names the generated modules import, define or use: generated classes must not shadow them."""
    placeholder = DriverNames("zz", "zz", "zz", "Zz0placeholder", "zz")
    generated = set(placeholder.classes)
    used: set[str] = set()
    for path, text in render(placeholder).items():
        if path.suffix != ".py":
            continue
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Name):
                used.add(node.id)
            elif isinstance(node, ast.alias):
                used.add(node.asname or node.name.split(".")[0])
            elif isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                used.add(node.name)
    return used - generated


def _core_requirement() -> str:
    """At least the jumpstarter-core that generated the package (without a local version label)."""
    version = importlib.metadata.version("jumpstarter-core").split("+")[0]
    return f"jumpstarter-core>={version}"
