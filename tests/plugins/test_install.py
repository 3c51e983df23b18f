"""Installing from this repository, as the README says, with PyPI in reach: ours wins.

PyPI's `jumpstarter-driver-power` and `-network` are the original jumpstarter's 0.9.x, a
different project with the same import name. The README's lines build our wheels and
install from them with `--find-links`; pip and uv then see both, and must pick ours: our
versions carry the epoch `1!`, above every version without one.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest

from testsupport.venvs import CommandFailed, Uv, Venv, clean_env, index_reachable, run

ROOT = Path(__file__).resolve().parents[2]
OURS = ("jumpstarter-core", "jumpstarter-driver-power", "jumpstarter-driver-serial")
LISTING = "import importlib.metadata as m, json; print(json.dumps({d.name: d.version for d in m.distributions()}))"


def readme_install_lines() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Installing the packages elsewhere") : text.index("## Layout")]
    (block,) = re.findall(r"```console\n(.*?)```", section, re.DOTALL)
    return [line[2:].split("  #")[0].strip() for line in block.splitlines() if line.startswith("$ ")]


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory, uv: Uv) -> Path:
    """The README's build line, into a directory of the test's."""
    build = readme_install_lines()[0]
    assert build == "uv build --all-packages --wheel --out-dir dist"
    out = tmp_path_factory.mktemp("dist")
    uv(*shlex.split(build)[1:-1], out, cwd=ROOT)
    return out


def test_the_readmes_lines_install_ours_with_pip(wheels: Path, tmp_path: Path, config_home: Path) -> None:
    _, make_venv, install, listing = readme_install_lines()  # the build: see `wheels`
    assert make_venv == "python3 -m venv ~/bench && . ~/bench/bin/activate"
    assert install == "pip install --find-links dist jumpstarter-driver-power jumpstarter-driver-serial"
    assert listing == "jmp driver list"
    script = "\n".join([make_venv, install.replace(" dist ", f" {wheels} "), listing, f"python -c '{LISTING}'"])
    env = clean_env(config_home, {"HOME": str(tmp_path), "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    try:
        output = run(["sh", "-ec", script], cwd=tmp_path, env=env).stdout
    except CommandFailed:
        if not index_reachable():
            pytest.skip("the package index cannot be reached, and pip needs it for the dependencies")
        raise
    versions = json.loads(output.splitlines()[-1])
    assert {name: versions.get(name) for name in OURS} == dict.fromkeys(OURS, "1!0.1.0"), versions
    assert "MockPower" in output and "LoopbackSerial" in output, output


def test_uv_installs_ours_too(wheels: Path, make_venv: Callable[..., Venv], uv: Uv) -> None:
    venv = make_venv("uv-find-links")
    uv("pip", "install", "--quiet", "--python", venv.python, "--find-links", wheels,
       "jumpstarter-driver-power", "jumpstarter-driver-network")  # fmt: skip
    versions = json.loads(venv.run("python", "-c", LISTING).stdout)
    names = ("jumpstarter-core", "jumpstarter-driver-power", "jumpstarter-driver-network")
    assert {name: versions.get(name) for name in names} == dict.fromkeys(names, "1!0.1.0"), versions
    # Our jumpstarter: the original's has no jumpstarter.common.tls.
    venv.run("python", "-c", "import jumpstarter.common.tls")


def test_our_versions_rank_above_every_release_of_the_original() -> None:
    from packaging.version import Version

    for pyproject in (ROOT / "packages").glob("*/pyproject.toml"):
        version = Version(re.search(r'^version = "(.+)"$', pyproject.read_text(), re.MULTILINE)[1])
        assert version.epoch >= 1 and not version.is_prerelease, pyproject
        assert version > Version("999.0"), "above any version the original may publish"
