"""Tests of a bench, run inside its jmp shell with the `jumpstarter_client` fixture.

uv run jmp shell --exporter-config examples/local.yaml -- pytest examples/test_local_bench.py
"""

from __future__ import annotations

from typing import Any


def test_the_board_powers_on(jumpstarter_client: Any) -> None:
    jumpstarter_client.power.on()
    assert jumpstarter_client.power.state() is True
    assert all(reading.voltage > 0 for reading in jumpstarter_client.power.read())


def test_the_console_answers(jumpstarter_client: Any) -> None:
    with jumpstarter_client.serial.open() as console:
        console.sendline("version")
        console.expect("version")
