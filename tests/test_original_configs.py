"""Exporter configurations written for the original jumpstarter (0.9.0) load, build and serve unchanged.

The original names drivers only by class path (`jumpstarter_driver_pyserial.driver.PySerial`); our driver
packages declare those paths as aliases of the drivers that reimplement them (entry points of the
`jumpstarter.driver_aliases` group), so the core names no driver package.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

from jumpstarter_driver_network.driver import EchoNetwork, TcpNetwork, UdpNetwork, UnixNetwork
from jumpstarter_driver_power.driver import MockPower, SyncMockPower
from jumpstarter_driver_serial.driver import PySerial

from jumpstarter.common.utils import serve
from jumpstarter.config.exporter import load_exporter_config
from jumpstarter.driver import Composite
from jumpstarter.registry import ALIAS_ENTRY_POINT_GROUP, ENTRY_POINT_GROUP, resolve_driver

ROOT = Path(__file__).resolve().parent.parent

# The class paths of the original's 0.9.0 packages (jumpstarter-driver-composite, -pyserial, -power,
# -network) for every driver that our packages and the core reimplement.
ORIGINAL_PATHS = {
    "jumpstarter_driver_composite.driver.Composite": Composite,
    "jumpstarter_driver_pyserial.driver.PySerial": PySerial,
    "jumpstarter_driver_power.driver.MockPower": MockPower,
    "jumpstarter_driver_power.driver.SyncMockPower": SyncMockPower,
    "jumpstarter_driver_network.driver.TcpNetwork": TcpNetwork,
    "jumpstarter_driver_network.driver.UdpNetwork": UdpNetwork,
    "jumpstarter_driver_network.driver.UnixNetwork": UnixNetwork,
    "jumpstarter_driver_network.driver.EchoNetwork": EchoNetwork,
}

# In the original's documented form: quoted class paths, a controller, a group and an alias.
ORIGINAL_CONFIG = """\
apiVersion: jumpstarter.dev/v1alpha1
kind: ExporterConfig
metadata:
  namespace: default
  name: demo
endpoint: grpc.jumpstarter.example.com:443
token: secret-token
export:
  power:
    type: "jumpstarter_driver_power.driver.MockPower"
  sync-power:
    type: jumpstarter_driver_power.driver.SyncMockPower
  serial:
    type: "jumpstarter_driver_pyserial.driver.PySerial"
    config:
      url: "loop://"
      baudrate: 115200
  echo:
    type: jumpstarter_driver_network.driver.EchoNetwork
  tcp:
    type: jumpstarter_driver_network.driver.TcpNetwork
    config: {host: 127.0.0.1, port: 5201}
  udp:
    type: jumpstarter_driver_network.driver.UdpNetwork
    config: {host: 127.0.0.1, port: 5201}
  unix:
    type: jumpstarter_driver_network.driver.UnixNetwork
    config: {path: /run/dut/console.sock}
  dut:
    type: jumpstarter_driver_composite.driver.Composite
    children:
      power:
        ref: power
"""


def test_every_original_class_path_names_our_driver() -> None:
    for path, driver_class in ORIGINAL_PATHS.items():
        assert resolve_driver(path) is driver_class, path


def test_a_config_written_for_the_original_builds_and_serves(tmp_path: Path) -> None:
    path = tmp_path / "exporter.yaml"
    path.write_text(ORIGINAL_CONFIG)
    root = load_exporter_config(path).build()
    assert {name: type(driver) for name, driver in root.children.items()} == {
        "power": MockPower,
        "sync-power": SyncMockPower,
        "serial": PySerial,
        "echo": EchoNetwork,
        "tcp": TcpNetwork,
        "udp": UdpNetwork,
        "unix": UnixNetwork,
        "dut": Composite,
    }
    assert root.children["dut"].children["power"] is root.children["power"]
    with serve(root) as client:
        client.power.on()
        client.dut.power.off()
        assert client.tcp.address() == "tcp://127.0.0.1:5201"
        assert client.serial.status()["baudrate"] == 115200


def test_jmp_shell_runs_a_config_written_for_the_original(tmp_path: Path) -> None:
    path = tmp_path / "exporter.yaml"
    path.write_text(ORIGINAL_CONFIG)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("JMP_", "JUMPSTARTER_"))}
    result = subprocess.run(
        [str(Path(sys.executable).parent / "jmp"), "shell", "--exporter-config", str(path), "--", "j", "power", "on"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '')}"},
        cwd=tmp_path,
        check=False,
        start_new_session=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("power on")
    # Local mode says once that the controller's settings are not used, and nothing else goes wrong.
    assert f"jmp: note: {path}: endpoint and token are not used in local mode" in result.stderr
    assert "Traceback" not in result.stderr


def _declared_aliases() -> dict[str, str]:
    """alias -> "module:Class", from the pyproject.toml of every package of the workspace."""
    aliases: dict[str, str] = {}
    for pyproject in sorted(ROOT.glob("packages/*/pyproject.toml")):
        entry_points = tomllib.loads(pyproject.read_text())["project"].get("entry-points", {})
        aliases.update(entry_points.get(ALIAS_ENTRY_POINT_GROUP, {}))
    return aliases


def test_our_packages_declare_exactly_the_original_paths() -> None:
    declared = _declared_aliases()
    assert sorted(declared) == sorted(ORIGINAL_PATHS)
    registered = set()
    for pyproject in ROOT.glob("packages/*/pyproject.toml"):
        entry_points = tomllib.loads(pyproject.read_text())["project"].get("entry-points", {})
        registered |= set(entry_points.get(ENTRY_POINT_GROUP, {}).values())
    # Each alias stands for a driver its package registers under its own name.
    assert set(declared.values()) <= registered


LIST_ORIGINAL_DRIVERS = textwrap.dedent(
    """
    import importlib, inspect, json
    from jumpstarter.driver import Driver
    found = []
    for package in ("jumpstarter_driver_composite", "jumpstarter_driver_power", "jumpstarter_driver_network"):
        module = importlib.import_module(package + ".driver")
        for name, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, Driver) and value.__module__ == module.__name__:
                found.append(module.__name__ + "." + name)
    print(json.dumps(found))
    """
)


def test_the_original_paths_are_those_of_its_packages(upstream_python: Path, upstream_env: dict[str, str]) -> None:
    """Checked against the original's installed packages (its pyserial package is not in that environment)."""
    result = subprocess.run(
        [str(upstream_python), "-c", LIST_ORIGINAL_DRIVERS],
        capture_output=True,
        text=True,
        timeout=120,
        env=upstream_env,
        check=True,
    )
    original = set(json.loads(result.stdout))
    ours = {driver_class.__name__ for driver_class in ORIGINAL_PATHS.values()}
    # Every class of the original that we reimplement (same name) is in the list, at its real path.
    assert {path for path in original if path.rpartition(".")[2] in ours} == {
        path for path in ORIGINAL_PATHS if not path.startswith("jumpstarter_driver_pyserial.")
    }
