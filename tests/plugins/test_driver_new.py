"""`jmp driver new`: the package it generates installs, registers its drivers and passes its own tests."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import shutil
import sys
import tomllib
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from jumpstarter.cli.driver_new import LAYOUT
from jumpstarter.cli.jmp import main
from testsupport.venvs import CommandFailed, Uv, Venv, run

ROOT = Path(__file__).resolve().parents[2]

FILES = [
    "README.md",
    "pyproject.toml",
    "src/jumpstarter_driver_my_relay/__init__.py",
    "src/jumpstarter_driver_my_relay/client.py",
    "src/jumpstarter_driver_my_relay/driver.py",
    "src/jumpstarter_driver_my_relay/py.typed",
    "tests/test_driver.py",
]


def generate(directory: Path, name: str = "my-relay") -> Path:
    result = CliRunner().invoke(main, ["driver", "new", name, "--directory", str(directory)])
    assert result.exit_code == 0, result.output
    return directory / f"jumpstarter-driver-{name}"


def readme_block(package: Path, language: str) -> str:
    """The first ```language block of the package's README."""
    return (package / "README.md").read_text().split(f"```{language}\n", 1)[1].split("```", 1)[0]


def tree(directory: Path) -> list[str]:
    return sorted(str(path.relative_to(directory)) for path in directory.rglob("*") if path.is_file())


# -- in this process: what the command writes and refuses --------------------------------


def test_layout_and_names(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["driver", "new", "my-relay", "-d", str(tmp_path)])
    assert result.exit_code == 0, result.output
    package = tmp_path / "jumpstarter-driver-my-relay"
    assert tree(package) == FILES
    assert str(package) in result.output and "MockMyRelay" in result.output

    pyproject = tomllib.loads((package / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == "jumpstarter-driver-my-relay"
    core = importlib.metadata.version("jumpstarter-core")
    assert pyproject["project"]["dependencies"] == [f"jumpstarter-core>={core}"]
    assert pyproject["build-system"]["build-backend"] == "hatchling.build"
    assert pyproject["project"]["entry-points"]["jumpstarter.drivers"] == {
        "MyRelay": "jumpstarter_driver_my_relay.driver:MyRelay",
        "MockMyRelay": "jumpstarter_driver_my_relay.driver:MockMyRelay",
    }

    driver = (package / "src/jumpstarter_driver_my_relay/driver.py").read_text()
    for expected in ("class MyRelayInterface(", "class MyRelay(", "class MockMyRelay(", "@exportstream", "yield "):
        assert expected in driver
    assert 'return "jumpstarter_driver_my_relay.client.MyRelayClient"' in driver
    assert "class MyRelayClient(DriverClient)" in (package / "src/jumpstarter_driver_my_relay/client.py").read_text()

    readme = (package / "README.md").read_text()
    for section in ("# MyRelay driver", "## Installation", "## Configuration", "## Methods", "## Client API"):
        assert f"\n{section}\n" in f"\n{readme}"
    assert "kind: ExporterConfig" in readme and "type: MyRelay\n" in readme
    assert "pip install jumpstarter-driver-my-relay" in readme
    config = yaml.safe_load(readme_block(package, "yaml"))
    assert config["apiVersion"] == "jumpstarter.dev/v1alpha1" and config["kind"] == "ExporterConfig"
    assert {key: value["type"] for key, value in config["export"].items()} == {
        "my_relay": "MyRelay",
        "mock_my_relay": "MockMyRelay",
    }


@pytest.mark.parametrize("name", ["x", "usb-hub2", "a1-b2-c3", "mock", "serial"])
def test_other_names_make_valid_code(tmp_path: Path, name: str) -> None:
    package = generate(tmp_path, name)
    module = "jumpstarter_driver_" + name.replace("-", "_")
    cls = "".join(word[:1].upper() + word[1:] for word in name.split("-"))
    assert tree(package) == [file.replace("my_relay", name.replace("-", "_")) for file in FILES]
    for path in package.rglob("*.py"):
        ast.parse(path.read_text(), filename=str(path))
    entry_points = tomllib.loads((package / "pyproject.toml").read_text())["project"]["entry-points"]
    assert entry_points["jumpstarter.drivers"][cls] == f"{module}.driver:{cls}"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("My-Relay", "is not a driver name"),
        ("my_relay", "is not a driver name"),
        ("1relay", "is not a driver name"),
        ("relay-", "is not a driver name"),
        ("my--relay", "is not a driver name"),
        ("-relay", "is not a driver name"),
        ("", "is not a driver name"),
        ("my relay", "is not a driver name"),
        ("../relay", "is not a driver name"),
        ("jumpstarter-driver-relay", "without the 'jumpstarter-driver-' prefix: 'relay'"),
        ("driver", "class called 'Driver', a name the generated code imports or uses"),
        ("none", "class called 'None', a Python keyword"),
        ("connection-error", "class called 'ConnectionError', a Python builtin"),
    ],
)
def test_bad_names_create_nothing(tmp_path: Path, name: str, message: str) -> None:
    result = CliRunner().invoke(main, ["driver", "new", "-d", str(tmp_path), "--", name])
    assert result.exit_code == 2
    error = result.output.strip().splitlines()[-1]
    assert error.startswith("jmp: error: Invalid value for 'NAME': ") and message in error, result.output
    assert error.endswith("(see 'jmp driver new --help')")
    assert list(tmp_path.iterdir()) == []


def test_existing_directory_is_left_alone(tmp_path: Path) -> None:
    existing = tmp_path / "jumpstarter-driver-my-relay"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    result = CliRunner().invoke(main, ["driver", "new", "my-relay", "-d", str(tmp_path)])
    assert result.exit_code == 1
    expected = f"jmp: error: {existing} already exists: remove it, or choose another NAME or --directory"
    assert result.output.strip() == expected
    assert tree(tmp_path) == ["jumpstarter-driver-my-relay/keep.txt"]


def test_missing_directory(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["driver", "new", "my-relay", "-d", str(tmp_path / "nowhere")])
    assert result.exit_code == 1
    assert "nowhere does not exist" in result.output
    assert list(tmp_path.iterdir()) == []


def test_current_directory_is_the_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["driver", "new", "relay"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "jumpstarter-driver-relay" / "src" / "jumpstarter_driver_relay" / "driver.py").is_file()


def _ruff() -> str:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if not ruff:
        pytest.skip("ruff is not installed")
    return ruff


def test_generated_code_is_ruff_clean(tmp_path: Path) -> None:
    package = generate(tmp_path)
    ruff = _ruff()
    # --isolated: ruff's defaults, not this workspace's configuration.
    run([ruff, "check", "--isolated", "--no-cache", "."], cwd=package)
    run([ruff, "format", "--isolated", "--no-cache", "--check", "."], cwd=package)
    # And the stricter rule set this workspace uses.
    run([ruff, "check", "--isolated", "--no-cache", "--select", "E,F,W,I,B,UP,SIM,RUF,ASYNC", "."], cwd=package)


def test_core_wheel_ships_the_templates(core_wheel: Path) -> None:
    names = set(zipfile.ZipFile(core_wheel).namelist())
    assert "jumpstarter/cli/driver_new.py" in names
    assert {f"jumpstarter/templates/driver/{template}" for template in LAYOUT} <= names


# -- in a fresh virtual environment: generated by the installed jmp, installed, tested -----


@dataclass(frozen=True)
class Generated:
    venv: Venv
    package: Path
    next_steps: list[str]  # the commands `jmp driver new` said to run next


def printed_next_steps(stdout: str) -> list[str]:
    """The commands after the "Next, ..." line of `jmp driver new`'s output."""
    lines = stdout.splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith("Next, "))
    return [line.strip() for line in lines[start + 1 :]]


def run_steps(steps: list[str], env: dict[str, str]) -> str:
    """Run the printed commands as a user would type them, in one shell; return their output."""
    result = run(["sh", "-ec", "\n".join(steps)], env=env)
    return result.stdout


@pytest.fixture(scope="module")
def generated(make_venv: Callable[..., Venv], core_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Generated:
    """A fresh venv with the core wheel only, where its own `jmp driver new` made a package."""
    venv = make_venv("driver-new", core_wheel)
    directory = tmp_path_factory.mktemp("authored")
    # The jmp of the wheel: this also proves that the wheel ships the templates.
    created = venv.run("jmp", "driver", "new", "my-relay", "--directory", directory)
    assert "Created" in created.stdout
    package = directory / "jumpstarter-driver-my-relay"
    return Generated(venv, package, printed_next_steps(created.stdout))


@pytest.fixture(scope="module")
def installed(generated: Generated) -> tuple[Generated, str]:
    """The package after the printed next steps, run as printed: installed, its tests run."""
    steps = generated.next_steps
    assert steps[0] == f"cd {generated.package}"
    assert steps[1] == f"uv pip install --python {generated.venv.python} -e . pytest", "uv made this venv: no pip"
    assert steps[2] == f"{generated.venv.python} -m pytest"
    try:
        return generated, run_steps(steps, generated.venv.env())
    except CommandFailed as error:
        pytest.fail(f"the next steps that jmp driver new printed fail:\n{error}")


def test_the_next_steps_with_pip(make_venv: Callable[..., Venv], core_wheel: Path, tmp_path: Path, uv: Uv) -> None:
    """In an environment that has pip, the next steps use it (from any directory, nothing activated)."""
    venv = make_venv("driver-new-pip", core_wheel)
    uv("pip", "install", "--quiet", "--python", venv.python, "pip")
    created = venv.run("jmp", "driver", "new", "relay", "-d", tmp_path, cwd=tmp_path)
    steps = printed_next_steps(created.stdout)
    assert steps[1] == f"{venv.python} -m pip install -e . pytest", steps
    env = venv.env({"PATH": "/usr/local/bin:/usr/bin:/bin", "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert "9 passed" in run_steps(steps, env)


def test_in_the_workspace_uv_run_pytest_imports_the_new_package(tmp_path: Path, uv: Uv) -> None:
    """`jmp driver new NAME -d packages` in this workspace, then `uv run pytest` (on a copy of it)."""
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy(ROOT / name, workspace / name)
    ignore = shutil.ignore_patterns("tests", "__pycache__", "*.pyc")
    shutil.copytree(ROOT / "packages", workspace / "packages", ignore=ignore)
    result = CliRunner().invoke(main, ["driver", "new", "my-relay", "-d", str(workspace / "packages")])
    assert result.exit_code == 0, result.output
    steps = printed_next_steps(result.output)
    assert steps == [f"cd {workspace}", "uv run pytest packages/jumpstarter-driver-my-relay"], result.output
    env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}
    steps[-1] = f"{uv.binary} run --quiet pytest -p no:cacheprovider packages/jumpstarter-driver-my-relay"
    try:
        output = run_steps(steps, env)
    except CommandFailed as error:
        pytest.fail(f"uv run pytest cannot use the new package:\n{error}")
    assert "9 passed" in output, output


def test_installed_jmp_refuses_a_bad_name(generated: Generated, tmp_path: Path) -> None:
    result = generated.venv.run("jmp", "driver", "new", "My_Relay", "-d", tmp_path, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("jmp: error: Invalid value for 'NAME': 'My_Relay' is not")
    assert list(tmp_path.iterdir()) == []


def test_generated_package_passes_its_own_tests(installed: tuple[Generated, str]) -> None:
    assert "9 passed" in installed[1], installed[1]


def test_generated_drivers_are_registered(installed: tuple[Generated, str]) -> None:
    generated = installed[0]
    listed = json.loads(generated.venv.run("jmp", "driver", "list", "--json").stdout)
    rows = {row["name"]: row for row in listed}
    assert rows["MyRelay"]["class"] == "jumpstarter_driver_my_relay.driver.MyRelay"
    assert rows["MockMyRelay"]["class"] == "jumpstarter_driver_my_relay.driver.MockMyRelay"
    assert {rows[name]["distribution"] for name in ("MyRelay", "MockMyRelay")} == {"jumpstarter-driver-my-relay"}
    assert rows["MyRelay"]["description"].startswith("A MyRelay device on the network")

    # Entry-point names resolve, and clients allow the package's client class by default.
    check = (
        "from jumpstarter.registry import resolve_driver\n"
        "from jumpstarter.client.classes import ClientClassPolicy\n"
        "print(resolve_driver('MockMyRelay').__module__)\n"
        "print(ClientClassPolicy.default().allows('jumpstarter_driver_my_relay.client.MyRelayClient'))\n"
    )
    assert generated.venv.run("python", "-c", check).stdout.split() == ["jumpstarter_driver_my_relay.driver", "True"]


def test_readme_example_runs(installed: tuple[Generated, str], tmp_path: Path) -> None:
    generated = installed[0]
    example = tmp_path / "readme_example.py"
    example.write_text(readme_block(generated.package, "python"))
    output = generated.venv.run("python", example).stdout.splitlines()
    assert output == ["Mock,MyRelay,0,0.1", "1.0", "1.0", "1.0", "b'ping'"]


READ_README_CONFIG = """
import sys
from pathlib import Path

from jumpstarter.common.utils import serve
from jumpstarter.config.exporter import load_exporter_config

root = load_exporter_config(Path(sys.argv[1])).build()
print(type(root.children["my_relay"]).__name__, root.children["my_relay"].host)
with serve(root) as client:
    print(client.children["mock_my_relay"].identify())
"""


def test_readme_config_builds(installed: tuple[Generated, str], tmp_path: Path) -> None:
    generated = installed[0]
    (tmp_path / "exporter.yaml").write_text(readme_block(generated.package, "yaml"))
    (tmp_path / "read.py").write_text(READ_README_CONFIG)
    output = generated.venv.run("python", "read.py", "exporter.yaml", cwd=tmp_path).stdout.splitlines()
    assert output == ["MyRelay 192.0.2.10", "Mock,MyRelay,0,0.1"]
