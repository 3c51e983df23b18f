"""PowerClient against power drivers written here: what it makes of odd answers, and of missing features."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from click.testing import CliRunner
from jumpstarter_driver_power.client import PowerClient
from jumpstarter_driver_power.common import MeasurementNotSupported, PowerReading, StateNotSupported
from jumpstarter_driver_power.driver import PowerInterface

from jumpstarter.client import DriverError
from jumpstarter.driver import Composite, Driver, export
from jumpstarter.testing import serve


@dataclass(kw_only=True)
class Meter(PowerInterface, Driver):
    """A power driver whose `read` yields what the test gives it, and which keeps the default `state`."""

    items: list[Any] = field(default_factory=list)
    measurements: int = 0

    @export
    def on(self) -> None:
        pass

    @export
    def off(self) -> None:
        pass

    @export
    def read(self) -> Iterator[Any]:
        self.measurements += 1
        yield from self.items


class Switch(Driver):
    """A power switch of another design: it names PowerClient but exports only on and off."""

    @classmethod
    def client(cls) -> str:
        return "jumpstarter_driver_power.client.PowerClient"

    @export
    def on(self) -> None:
        pass

    @export
    def off(self) -> None:
        pass


def test_a_driver_may_yield_several_readings_per_measurement() -> None:
    meter = Meter(items=[{"voltage": 5, "current": 1}, PowerReading(voltage=12.0, current=0.25)])
    with serve(meter) as power:
        assert list(power.read()) == [PowerReading(voltage=5.0, current=1.0), PowerReading(voltage=12.0, current=0.25)]
        # --count counts readings, not measurements: the second measurement is left after its first reading.
        result = CliRunner().invoke(power.cli(), ["read", "--count", "3", "--interval", "0"])
        assert result.output.splitlines() == [
            "voltage=5.0 V  current=1.0 A  apparent_power=5.0 VA",
            "voltage=12.0 V  current=0.25 A  apparent_power=3.0 VA",
            "voltage=5.0 V  current=1.0 A  apparent_power=5.0 VA",
        ]
    assert meter.measurements == 3


def test_count_0_reads_until_the_reader_stops() -> None:
    meter = Meter(items=[{"voltage": 5.0, "current": 1.0}])
    with serve(meter) as power:
        assert isinstance(power, PowerClient)
        readings = list(itertools.islice(power._readings(0, 0), 25))
    assert len(readings) == 25 and meter.measurements == 25


def test_a_reading_that_is_not_one_is_a_clear_error() -> None:
    with serve(Meter(items=[{"volts": 5.0}])) as power:
        with pytest.raises(DriverError) as caught:
            list(power.read())
        assert str(caught.value) == (
            "the power driver sent {'volts': 5.0}, which is not a reading of the form {'voltage': V, 'current': A}"
        )
        result = CliRunner().invoke(power.cli(), ["read"])
        assert result.exit_code == 1
        assert result.output.startswith("Error: the power driver sent {'volts': 5.0}, which is not a reading")


def test_a_measurement_without_readings_is_an_error_on_the_command_line() -> None:
    with serve(Meter()) as power:
        assert list(power.read()) == []
        result = CliRunner().invoke(power.cli(), ["read", "--count", "2", "--interval", "0"])
    assert (result.exit_code, result.output) == (1, "Error: the power driver returned no reading\n")


def test_the_interface_s_default_state_says_the_driver_cannot_tell() -> None:
    with serve(Composite(children={"dut": Meter()})) as root:
        with pytest.raises(StateNotSupported) as caught:
            root.dut.state()
        assert str(caught.value) == (
            "power driver 'dut' cannot tell whether the power is on: Meter does not report whether the power is on"
        )
        assert isinstance(caught.value, NotImplementedError)
        result = CliRunner().invoke(root.cli(), ["dut", "state"])
        assert (result.exit_code, result.output) == (1, f"Error: {caught.value}\n")


def test_a_driver_without_read_or_state_gets_the_typed_errors() -> None:
    with serve(Switch()) as power:
        power.cycle(0)
        with pytest.raises(MeasurementNotSupported, match=r"^the power driver cannot measure voltage or current: "):
            list(power.read())
        with pytest.raises(StateNotSupported, match=r"^the power driver cannot tell whether the power is on: "):
            power.state()


def test_a_state_that_is_not_a_boolean_is_a_clear_error() -> None:
    class Vague(Meter):
        @export
        def state(self) -> Any:
            return "probably"

    with serve(Vague()) as power, pytest.raises(DriverError) as caught:
        power.state()
    assert str(caught.value) == (
        "the power driver answered 'probably' when asked whether the power is on: not true or false"
    )


def test_the_client_loads_pydantic_with_its_first_reading_only() -> None:
    # `j power on` imports the client: pydantic is a third of its start-up, and only readings need it.
    code = (
        "import sys, json\n"
        "import jumpstarter_driver_power.client\n"
        "before = 'pydantic' in sys.modules\n"
        "from jumpstarter_driver_power.common import PowerReading\n"
        "print(json.dumps([before, 'pydantic' in sys.modules, PowerReading.__module__]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(result.stdout) == [False, True, "jumpstarter_driver_power.common"]
