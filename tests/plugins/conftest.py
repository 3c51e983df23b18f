"""Fresh virtual environments for the plugin tests: wheels built once per session, venvs on demand.

The tests install packages the way a user would, into environments of their own (never
this one): the core from a wheel built from the workspace, driver packages from their
sources or wheels. `uv` does the work (from $UV or the PATH) and its cache makes repeated
installs fast. Dependencies come from the package index; when an install fails and the
index cannot be reached, the test is skipped and says why.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from testsupport.venvs import Uv, Venv

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "packages" / "jumpstarter-core"


@pytest.fixture(scope="session")
def config_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty XDG_CONFIG_HOME: no client configuration."""
    return tmp_path_factory.mktemp("config-home")


@pytest.fixture(scope="session")
def uv(config_home: Path) -> Uv:
    binary = os.environ.get("UV") or shutil.which("uv")
    if not binary:
        pytest.skip("uv is not installed (neither $UV nor uv on the PATH)")
    return Uv(binary, config_home)


@pytest.fixture(scope="session")
def build_wheel(uv: Uv, tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], Path]:
    """Build the wheel of the project at a path (``uv build --wheel``), once; return the wheel's path."""
    built: dict[Path, Path] = {}

    def build(project: Path) -> Path:
        if project not in built:
            out = tmp_path_factory.mktemp(f"wheel-{project.name}")
            uv("build", "--wheel", "--quiet", "--out-dir", out, project)
            (built[project],) = out.glob("*.whl")
        return built[project]

    return build


@pytest.fixture(scope="session")
def core_wheel(build_wheel: Callable[[Path], Path]) -> Path:
    """The wheel of jumpstarter-core, built from the workspace once per session."""
    return build_wheel(CORE)


@pytest.fixture(scope="session")
def make_venv(uv: Uv, config_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Venv]:
    """``make_venv(name, *requirements)``: a fresh venv with `requirements` installed (``uv pip install`` args)."""

    def make(name: str, *requirements: str | Path) -> Venv:
        venv = Venv(tmp_path_factory.mktemp(f"venv-{name}", numbered=True) / ".venv", config_home)
        uv("venv", "--quiet", "--python", sys.executable, venv.path)
        if requirements:
            uv("pip", "install", "--quiet", "--python", venv.python, *requirements)
        return venv

    return make
