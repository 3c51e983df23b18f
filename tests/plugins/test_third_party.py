"""A third-party driver package, end to end, as its author and its users would meet it.

ACME writes `acme-lab-drivers` outside this workspace (its own layout, its own names: the
entry point `AcmeThermostat` is the class `acme_lab.drivers.Thermostat`), builds its wheel,
and installs it next to the core's wheel in a fresh environment. There, an exporter config
names the driver by its entry-point name, and clients allow ACME's client class because
the package is installed, while the client class of `acme-tools`, installed too but
registering no drivers, is refused until JMP_DRIVERS_ALLOW names it.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from testsupport.venvs import Venv

ACME_LAB = {
    "pyproject.toml": """
        [project]
        name = "acme-lab-drivers"
        version = "1.2.0"
        description = "ACME lab equipment for jumpstarter"
        requires-python = ">=3.11"
        dependencies = ["jumpstarter-core"]

        [project.entry-points."jumpstarter.drivers"]
        AcmeThermostat = "acme_lab.drivers:Thermostat"

        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"

        [tool.hatch.build.targets.wheel]
        packages = ["acme_lab"]
        """,
    "acme_lab/__init__.py": '"""ACME lab equipment."""\n',
    "acme_lab/drivers.py": """
        from collections.abc import Iterator
        from dataclasses import dataclass

        from jumpstarter.driver import Driver, export


        @dataclass(kw_only=True)
        class Thermostat(Driver):
            \"\"\"An ACME thermostat: a setpoint, and a temperature that follows it.\"\"\"

            setpoint: float = 20.0
            unit: str = "C"

            @classmethod
            def client(cls) -> str:
                return "acme_lab.clients.ThermostatClient"

            @export
            def set_setpoint(self, value: float) -> None:
                self.setpoint = value

            @export
            def status(self) -> dict:
                return {"setpoint": self.setpoint, "unit": self.unit}

            @export
            def readings(self, count: int) -> Iterator[float]:
                for step in range(count):
                    yield self.setpoint - 1 + step / 2
        """,
    "acme_lab/clients.py": """
        from collections.abc import Iterator

        from jumpstarter.client import DriverClient


        class ThermostatClient(DriverClient):
            def set(self, value: float) -> None:
                self.call("set_setpoint", value)

            def status(self) -> dict:
                return self.call("status")

            def readings(self, count: int = 3) -> Iterator[float]:
                yield from self.streamingcall("readings", count)
        """,
}

# Installed, with a client class, but no drivers: installing it is no consent to its clients.
ACME_TOOLS = {
    "pyproject.toml": """
        [project]
        name = "acme-tools"
        version = "0.3.0"
        requires-python = ">=3.11"
        dependencies = ["jumpstarter-core"]

        [build-system]
        requires = ["hatchling"]
        build-backend = "hatchling.build"

        [tool.hatch.build.targets.wheel]
        packages = ["acme_tools"]
        """,
    "acme_tools/__init__.py": "",
    "acme_tools/client.py": """
        from jumpstarter.client import DriverClient


        class GadgetClient(DriverClient):
            def ping(self) -> str:
                return self.call("ping")
        """,
}

EXPORTER_CONFIG = """
    apiVersion: jumpstarter.dev/v1alpha1
    kind: ExporterConfig
    metadata:
      namespace: lab
      name: acme-bench
    export:
      thermostat:
        type: AcmeThermostat
        config:
          setpoint: 21.5
          unit: K
    """

# Loads the config, serves it and drives it, as a user of the exporter config would.
DRIVE_CONFIG = """
    import json
    from pathlib import Path

    from jumpstarter.common.utils import serve
    from jumpstarter.config.exporter import load_exporter_config

    root = load_exporter_config(Path("exporter.yaml")).build()
    driver = root.children["thermostat"]
    with serve(root) as client:
        thermostat = client.children["thermostat"]
        before = thermostat.status()
        thermostat.set(23.0)
        print(json.dumps({
            "driver": f"{type(driver).__module__}.{type(driver).__qualname__}",
            "client": f"{type(thermostat).__module__}.{type(thermostat).__qualname__}",
            "before": before,
            "after": thermostat.status(),
            "readings": list(thermostat.readings(3)),
        }))
    """

# An exporter session on a Unix socket and a client with the default allow-list (connect()).
DRIVE_DEFAULT_POLICY = """
    import json
    import sys
    from dataclasses import dataclass

    import anyio

    from acme_lab.drivers import Thermostat
    from jumpstarter.client import DriverClientUnavailable, connect
    from jumpstarter.client.classes import ClientClassPolicy
    from jumpstarter.driver import Composite, Driver, export
    from jumpstarter.testing import serve_socket_async


    @dataclass(kw_only=True)
    class Gadget(Driver):
        @classmethod
        def client(cls) -> str:
            return "acme_tools.client.GadgetClient"

        @export
        def ping(self) -> str:
            return "pong"


    def name(value):
        return f"{type(value).__module__}.{type(value).__qualname__}"


    def drive(path):
        result = {}
        with connect(path) as client:
            result["thermostat"] = name(client.thermostat)
            result["status"] = client.thermostat.status()
            result["gadget"] = name(client.gadget)
            try:
                result["ping"] = client.gadget.ping()
            except DriverClientUnavailable as error:
                result["refused"] = str(error)
        result["acme_tools imported"] = "acme_tools" in sys.modules
        policy = ClientClassPolicy.default()
        paths = ["acme_lab.clients.ThermostatClient", "acme_tools.client.GadgetClient"]
        result["allows"] = {path: policy.allows(path) for path in paths}
        return result


    async def main():
        root = Composite(children={"thermostat": Thermostat(setpoint=19.0), "gadget": Gadget()})
        async with serve_socket_async(root) as path:
            return await anyio.to_thread.run_sync(drive, path)


    print(json.dumps(anyio.run(main)))
    """


def write_tree(directory: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return directory


@dataclass(frozen=True)
class Bench:
    venv: Venv
    directory: Path  # the exporter's working directory: exporter.yaml and the scripts

    def script(self, name: str, env: dict[str, str] | None = None) -> dict:
        result = self.venv.run("python", self.directory / name, cwd=self.directory, env=env)
        return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def bench(
    build_wheel: Callable[[Path], Path],
    core_wheel: Path,
    make_venv: Callable[..., Venv],
    tmp_path_factory: pytest.TempPathFactory,
) -> Bench:
    """ACME's wheels built from their sources, installed with the core's wheel in a fresh venv."""
    author = tmp_path_factory.mktemp("acme")
    lab_wheel = build_wheel(write_tree(author / "acme-lab-drivers", ACME_LAB))
    tools_wheel = build_wheel(write_tree(author / "acme-tools", ACME_TOOLS))
    assert lab_wheel.name == "acme_lab_drivers-1.2.0-py3-none-any.whl"
    venv = make_venv("third-party", core_wheel, lab_wheel, tools_wheel)
    directory = write_tree(
        tmp_path_factory.mktemp("bench"),
        {
            "exporter.yaml": EXPORTER_CONFIG,
            "drive_config.py": DRIVE_CONFIG,
            "drive_default_policy.py": DRIVE_DEFAULT_POLICY,
        },
    )
    return Bench(venv, directory)


def test_installed_driver_is_listed(bench: Bench) -> None:
    listed = json.loads(bench.venv.run("jmp", "driver", "list", "--json").stdout)
    assert {row["name"]: row["distribution"] for row in listed} == {
        "AcmeThermostat": "acme-lab-drivers",
        "Composite": "jumpstarter-core",
    }
    (acme,) = (row for row in listed if row["name"] == "AcmeThermostat")
    assert acme["class"] == "acme_lab.drivers.Thermostat"
    assert acme["version"] == "1.2.0"
    assert acme["description"] == "An ACME thermostat: a setpoint, and a temperature that follows it."


def test_exporter_config_names_the_driver_by_its_entry_point(bench: Bench) -> None:
    result = bench.script("drive_config.py")
    assert result == {
        "driver": "acme_lab.drivers.Thermostat",
        "client": "acme_lab.clients.ThermostatClient",
        "before": {"setpoint": 21.5, "unit": "K"},
        "after": {"setpoint": 23.0, "unit": "K"},
        "readings": [22.0, 22.5, 23.0],
    }


def test_default_client_policy_allows_installed_driver_packages_only(bench: Bench) -> None:
    result = bench.script("drive_default_policy.py")
    assert result["thermostat"] == "acme_lab.clients.ThermostatClient"
    assert result["status"] == {"setpoint": 19.0, "unit": "C"}
    # acme-tools is installed, but registers no drivers: its client class is refused, unimported.
    assert result["gadget"] == "jumpstarter.client.base.StubDriverClient"
    assert "ping" not in result
    assert "acme_tools.client.GadgetClient" in result["refused"]
    assert "not in the allowed client packages" in result["refused"]
    assert "JMP_DRIVERS_ALLOW='acme_tools.*'" in result["refused"]
    assert result["acme_tools imported"] is False
    assert result["allows"] == {"acme_lab.clients.ThermostatClient": True, "acme_tools.client.GadgetClient": False}


def test_jmp_drivers_allow_admits_another_package(bench: Bench) -> None:
    result = bench.script("drive_default_policy.py", env={"JMP_DRIVERS_ALLOW": "acme_tools.*"})
    assert result["thermostat"] == "acme_lab.clients.ThermostatClient"
    assert result["gadget"] == "acme_tools.client.GadgetClient"
    assert result["ping"] == "pong"
    assert result["acme_tools imported"] is True
    assert result["allows"] == {"acme_lab.clients.ThermostatClient": True, "acme_tools.client.GadgetClient": True}
