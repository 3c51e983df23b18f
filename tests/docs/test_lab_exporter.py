"""The examples of docs/reference/lab-exporter.md that are no python blocks: the hooks and the systemd unit."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

import anyio

from jumpstarter.cli.exporter import exporter
from jumpstarter.client import connect
from jumpstarter.config.exporter import check_for_serving, joins_a_lab, parse_exporter_config
from jumpstarter.exporter import LeaseSessions, listen
from testsupport.doc_blocks import fenced
from testsupport.systemd_units import parse_unit, verify_unit

PAGE = Path(__file__).resolve().parents[2] / "docs" / "reference" / "lab-exporter.md"


def blocks(language: str) -> list[str]:
    return [block.content for block in fenced(PAGE, language)]


def test_the_documented_hooks_run_around_a_lease() -> None:
    (hooks,) = [block for block in blocks("yaml") if block.startswith("hooks:")]
    config = parse_exporter_config(f"metadata: {{name: bench-3}}\nexport:\n  power: {{type: MockPower}}\n{hooks}")
    assert config.hooks.before_lease is not None and config.hooks.before_lease.on_failure == "endLease"

    def power_is_on(path: str) -> bool:
        with connect(path) as client:
            return bool(client.power.state())

    async def main() -> list[bool]:
        seen = []
        leases = LeaseSessions(config.build, hooks=config.hooks)
        async with listen(leases, private_unix=True) as at:
            await leases.begin_lease("lease-1", "alice")
            seen.append(await anyio.to_thread.run_sync(power_is_on, at.unix_path))
            await leases.end_lease()
            await leases.begin_lease("lease-2", "bob")
            seen.append(await anyio.to_thread.run_sync(power_is_on, at.unix_path))
            await leases.end_lease()
        return seen

    assert anyio.run(main) == [True, True]


def test_the_documented_lab_config_is_what_jmp_exporter_run_takes() -> None:
    (config_text,) = [block for block in blocks("yaml") if "endpoint:" in block]
    config = parse_exporter_config(config_text.replace('"LS0tLS1CRUdJTi..."', '""'))
    check_for_serving(config)  # a lab configuration: nothing refused
    assert joins_a_lab(config) and config.metadata.name == "bench-3"


def unit() -> configparser.ConfigParser:
    (text,) = blocks("ini")
    return parse_unit(text)


def test_the_unit_restarts_the_exporter_always_and_runs_a_valid_command() -> None:
    service = unit()["Service"]
    assert service["Restart"] == "always"
    argv = shlex.split(service["ExecStart"])
    assert argv[0].endswith("/jmp") and argv[1:3] == ["exporter", "run"]
    run = exporter.commands["run"]
    context = run.make_context("run", argv[3:])  # refuses an unknown option or a missing value
    assert context.params["config_path"] == Path("/etc/jumpstarter/exporters/bench-3.yaml")


def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    (text,) = blocks("ini")
    verify_unit(text, tmp_path / "jumpstarter-exporter-bench-3.service")
