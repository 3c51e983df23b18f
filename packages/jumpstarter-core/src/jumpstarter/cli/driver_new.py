"""`jmp driver new NAME`: start a driver package from the templates in `jumpstarter/templates/driver`."""

from __future__ import annotations

import ast
import builtins
import fnmatch
import importlib.metadata
import importlib.util
import keyword
import re
import shlex
import shutil
import sys
import tomllib
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
    "package/py.typed.tmpl": "src/{package}/py.typed",
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
    for line in next_steps(target):
        click.echo(line)


def next_steps(target: Path) -> list[str]:
    """What to run next, as commands that work where the package was made.

    In a uv workspace whose members include the package, `uv run` installs it with the
    others. Anywhere else, the package goes into the environment of this jmp, which has
    the jumpstarter-core it depends on (not on PyPI): by its python's path, so that no
    activation is needed, with pip if that environment has it, else with uv.
    """
    workspace = _uv_workspace(target)
    if workspace is not None:
        root, member = workspace
        relative = target.resolve().relative_to(root).as_posix()
        steps = [f"  cd {shlex.quote(str(root))}", f"  uv run pytest {shlex.quote(relative)}"]
        if member:
            return [f"Next, in the uv workspace {root}, which it is a member of:", *steps]
        return [
            f"Next, add {relative!r} to the members of [tool.uv.workspace] in {root / 'pyproject.toml'}, then:",
            *steps,
        ]
    python = shlex.quote(sys.executable)
    if importlib.util.find_spec("pip") is not None:
        install = f"{python} -m pip install -e . pytest"
    else:
        install = f"uv pip install --python {python} -e . pytest"
    return [
        "Next, install it into the environment of this jmp (which has jumpstarter-core) and run its tests:",
        f"  cd {shlex.quote(str(target))}",
        f"  {install}",
        f"  {python} -m pytest",
    ]


def _uv_workspace(target: Path) -> tuple[Path, bool] | None:
    """The root of the uv workspace `target` lies in, and whether its members include it; None outside one."""
    resolved = target.resolve()
    for directory in resolved.parents:
        pyproject = directory / "pyproject.toml"
        if not pyproject.is_file():
            continue
        try:
            settings = tomllib.loads(pyproject.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue
        workspace = settings.get("tool", {}).get("uv", {}).get("workspace")
        if not isinstance(workspace, dict):
            continue
        relative = resolved.relative_to(directory).as_posix()
        included = any(fnmatch.fnmatch(relative, str(glob).rstrip("/")) for glob in workspace.get("members", []))
        excluded = any(fnmatch.fnmatch(relative, str(glob).rstrip("/")) for glob in workspace.get("exclude", []))
        return directory, included and not excluded
    return None


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
