"""Our driver distributions as users get them: wheels built from the workspace, one installed alone.

`pip install jumpstarter-driver-serial` must be all it takes: the wheels of the core and of
the serial package go into a fresh environment, whose other dependencies come from the
package index.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from testsupport.venvs import Venv

ROOT = Path(__file__).resolve().parents[2]

LOOP_BENCH = """\
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata:
  name: loop-bench
export:
  console:
    type: LoopbackSerial
"""


@pytest.fixture(scope="module")
def serial_alone(build_wheel: Callable[[Path], Path], core_wheel: Path, make_venv: Callable[..., Venv]) -> Venv:
    serial_wheel = build_wheel(ROOT / "packages" / "jumpstarter-driver-serial")
    return make_venv("serial-alone", core_wheel, serial_wheel)


def test_every_distribution_says_it_is_typed(build_wheel: Callable[[Path], Path]) -> None:
    # py.typed (PEP 561): type checkers read the annotations of the installed packages.
    for project, package in [
        ("jumpstarter-core", "jumpstarter"),
        ("jumpstarter-driver-network", "jumpstarter_driver_network"),
        ("jumpstarter-driver-power", "jumpstarter_driver_power"),
        ("jumpstarter-driver-serial", "jumpstarter_driver_serial"),
    ]:
        names = zipfile.ZipFile(build_wheel(ROOT / "packages" / project)).namelist()
        assert f"{package}/py.typed" in names, project


def on_path(venv: Venv) -> dict[str, str]:
    """The environment's scripts first on PATH, so that `j` inside `jmp shell` is this environment's."""
    return {"PATH": f"{venv.path / 'bin'}{os.pathsep}{os.environ['PATH']}"}


def test_the_serial_package_installs_alone_with_its_dependencies(serial_alone: Venv) -> None:
    listing = "import importlib.metadata as m, json; print(json.dumps(sorted(d.name for d in m.distributions())))"
    installed = set(json.loads(serial_alone.run("python", "-c", listing).stdout))
    assert {"jumpstarter-core", "jumpstarter-driver-serial", "pyserial", "pexpect"} <= installed
    assert not installed & {"jumpstarter-driver-power", "jumpstarter-driver-network"}


def test_jmp_driver_list_shows_its_drivers(serial_alone: Venv) -> None:
    listed = json.loads(serial_alone.run("jmp", "driver", "list", "--json").stdout)
    assert {row["name"]: row["distribution"] for row in listed} == {
        "Composite": "jumpstarter-core",
        "LoopbackSerial": "jumpstarter-driver-serial",
        "PySerial": "jumpstarter-driver-serial",
    }


def test_its_loop_driver_works_without_hardware(serial_alone: Venv, tmp_path: Path) -> None:
    (tmp_path / "loop-bench.yaml").write_text(LOOP_BENCH)
    result = serial_alone.run(
        "jmp", "shell", "--exporter-config", "loop-bench.yaml", "--",
        "sh", "-c", "echo hello | j console pipe --until hello --timeout 10",
        cwd=tmp_path, env=on_path(serial_alone),
    )  # fmt: skip
    assert result.stdout == "hello\n"


def test_a_driver_of_a_package_not_installed_says_how_to_find_it(serial_alone: Venv, tmp_path: Path) -> None:
    (tmp_path / "power.yaml").write_text(LOOP_BENCH.replace("LoopbackSerial", "MockPower"))
    result = serial_alone.run("jmp", "exporter", "run", "--config", tmp_path / "power.yaml", check=False)
    assert result.returncode == 2, result.stderr
    # The core names no driver package: the installed drivers and the packages' naming convention.
    assert "no installed driver is called 'MockPower'; `jmp driver list` shows the installed drivers" in result.stderr
    assert (
        "jumpstarter-driver-<name>: install it with: pip install --find-links DIST jumpstarter-driver-<name>"
        in result.stderr
    )


def test_the_controller_commands_name_their_distribution(serial_alone: Venv) -> None:
    # `jmp controller`, `jmp router` and `jmp admin` come with jumpstarter-controller, not installed here.
    result = serial_alone.run("jmp", "router", "run", "--listen", "127.0.0.1:1", check=False)
    assert result.returncode == 1, result
    assert result.stderr.startswith(
        "jmp: error: 'jmp router' comes with the jumpstarter-controller distribution, which is not installed; "
        "install it with: pip install --find-links DIST jumpstarter-controller"
    )
    assert len(result.stderr.splitlines()) == 1
