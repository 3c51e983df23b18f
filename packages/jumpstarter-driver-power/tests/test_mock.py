"""MockPower and SyncMockPower through a real gRPC connection: the client API, its async twins and the CLI."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from click.testing import CliRunner
from jumpstarter_driver_power.client import PowerClient, format_reading
from jumpstarter_driver_power.common import PowerReading
from jumpstarter_driver_power.driver import MockPower, PowerInterface, SyncMockPower
from pydantic import ValidationError

from jumpstarter.client import DriverInvalidArgument
from jumpstarter.driver import export
from jumpstarter.testing import serve, serve_async

MOCKS = [MockPower, SyncMockPower]


@pytest.fixture(params=MOCKS, ids=lambda cls: cls.__name__)
def power(request: pytest.FixtureRequest) -> Iterator[PowerClient]:
    with serve(request.param(voltage=12.0, current=0.5)) as client:
        yield client


def test_the_client_class_is_the_original_path(power: PowerClient) -> None:
    assert type(power) is PowerClient
    assert power.labels["jumpstarter.dev/client"] == "jumpstarter_driver_power.client.PowerClient"
    assert MockPower.__module__ == "jumpstarter_driver_power.driver"
    assert issubclass(MockPower, PowerInterface) and issubclass(SyncMockPower, PowerInterface)


def test_on_off_state_and_readings(power: PowerClient) -> None:
    assert power.state() is False
    assert list(power.read()) == [PowerReading(voltage=0.0, current=0.0)]
    power.on()
    assert power.state() is True
    [reading] = list(power.read())
    assert isinstance(reading, PowerReading)
    assert (reading.voltage, reading.current, reading.apparent_power) == (12.0, 0.5, 6.0)
    power.off()
    assert power.state() is False
    assert list(power.read()) == [PowerReading(voltage=0.0, current=0.0)]


@dataclass(kw_only=True)
class TimedPower(SyncMockPower):
    """Remembers when it was switched, on the exporter's side of the connection."""

    switched: list[tuple[str, float]] = field(default_factory=list)

    @export
    def on(self) -> None:
        super().on()
        self.switched.append(("on", time.monotonic()))

    @export
    def off(self) -> None:
        super().off()
        self.switched.append(("off", time.monotonic()))


@pytest.mark.parametrize("cli", [False, True], ids=["client", "cli"])
def test_cycle_keeps_the_power_off_for_the_wait(cli: bool) -> None:
    driver = TimedPower(initially_on=True)
    with serve(driver) as power:
        if cli:
            assert invoke(power, "cycle", "--wait", "0.2") == (0, "power cycled (off for 0.2 s)\n")
        else:
            power.cycle(wait=0.2)
        assert power.state() is True
    [(first, off_at), (second, on_at)] = driver.switched
    assert (first, second) == ("off", "on")
    assert on_at - off_at >= 0.2  # a lower bound: sleeping never takes less


def test_cycle_refuses_a_negative_or_nan_wait_before_switching(power: PowerClient) -> None:
    power.on()
    for wait in (-1, float("nan")):
        with pytest.raises(ValueError, match="wait must be a number of seconds, 0 or more"):
            power.cycle(wait)
    assert power.state() is True


@pytest.mark.parametrize("cls", MOCKS, ids=lambda cls: cls.__name__)
def test_initially_on_is_the_state_of_every_new_session(cls: type[MockPower]) -> None:
    driver = cls(initially_on=True)
    with serve(driver) as power:
        assert power.state() is True
        power.off()
    with serve(driver) as power:  # a new session resets the mock
        assert power.state() is True


@pytest.mark.parametrize("cls", MOCKS, ids=lambda cls: cls.__name__)
def test_async_twins(cls: type[MockPower]) -> None:
    import anyio

    async def main() -> list[PowerReading]:
        async with serve_async(cls()) as power:
            await power.on_async()
            assert await power.state_async() is True
            readings = [reading async for reading in power.read_async()]
            await power.cycle_async(0)
            await power.off_async()
            assert await power.state_async() is False
            with pytest.raises(ValueError, match="wait must be"):
                await power.cycle_async(-1)
            return readings

    assert anyio.run(main) == [PowerReading(voltage=5.0, current=2.0)]


def test_the_driver_logs_reach_the_client(power: PowerClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="jumpstarter.remote"), power.log_stream():
        power.on()
        power.off()
        deadline = time.monotonic() + 5
        while "power off" not in remote(caplog) and time.monotonic() < deadline:
            time.sleep(0.01)
    # The records the client received, re-logged (in this process the driver's own are captured too).
    assert remote(caplog) == ["power on", "power off"]


def remote(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name.startswith("jumpstarter.remote.driver")]


def test_an_argument_the_interface_does_not_take_is_refused(power: PowerClient) -> None:
    with pytest.raises(DriverInvalidArgument):
        power.call("on", 1)
    assert power.state() is False


# -- PowerReading ------------------------------------------------------------------------------


def test_power_reading_validates_what_travels() -> None:
    # Our peers send the floats as they are; the original's clients validate strictly.
    assert PowerReading.model_validate({"voltage": 5.0, "current": 2.0}, strict=True).apparent_power == 10.0
    assert PowerReading.model_validate({"voltage": 5, "current": "0.5"}).current == 0.5
    assert PowerReading(voltage=5.0, current=0.1).model_dump() == {"voltage": 5.0, "current": 0.1}
    assert format_reading(PowerReading(voltage=3.0, current=0.1)) == (
        "voltage=3.0 V  current=0.1 A  apparent_power=0.3 VA"  # the product is rounded
    )
    with pytest.raises(ValidationError):
        PowerReading.model_validate({"voltage": 5.0})


# -- the command line ---------------------------------------------------------------------------


def invoke(power: PowerClient, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(power.cli(), list(args))
    return result.exit_code, result.output


def test_cli_on_off_state(power: PowerClient) -> None:
    assert invoke(power, "state") == (0, "off\n")
    assert invoke(power, "on") == (0, "power on\n")
    assert power.state() is True
    assert invoke(power, "state") == (0, "on\n")
    assert invoke(power, "off") == (0, "power off\n")
    assert power.state() is False


def test_cli_cycle(power: PowerClient) -> None:
    assert invoke(power, "cycle", "-w", "0") == (0, "power cycled (off for 0 s)\n")
    assert power.state() is True


def test_cli_read_counts(power: PowerClient) -> None:
    power.on()
    code, output = invoke(power, "read", "--count", "3", "--interval", "0.01")
    assert code == 0
    assert output.splitlines() == ["voltage=12.0 V  current=0.5 A  apparent_power=6.0 VA"] * 3
    assert invoke(power, "read") == (0, "voltage=12.0 V  current=0.5 A  apparent_power=6.0 VA\n")


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["cycle", "--wait", "-1"], "Invalid value for '--wait'"),
        (["read", "--count", "-1"], "Invalid value for '--count'"),
        (["read", "--interval", "x"], "Invalid value for '--interval'"),
        (["read", "--interval", "nan"], "'nan' is not a number of seconds, 0 or more"),
        (["cycle", "--wait", "inf"], "'inf' is not a number of seconds, 0 or more"),
        (["toggle"], "No such command 'toggle'"),
    ],
)
def test_cli_usage_errors(power: PowerClient, args: list[str], complaint: str) -> None:
    power.on()
    code, output = invoke(power, *args)
    assert code == 2
    assert complaint in output
    assert power.state() is True  # nothing was switched


def test_cli_help_lists_the_commands(power: PowerClient) -> None:
    code, output = invoke(power, "--help")
    assert code == 0
    assert "Switch a device's power on and off, cycle it, and read what it draws." in output
    for command in ("cycle", "off", "on", "read", "state"):
        assert f"  {command} " in output


def test_cli_help_comes_from_the_exporter_config_when_it_has_some() -> None:
    driver = MockPower(description="Bench PSU of the DUT", methods_description={"on": "Power up the DUT"})
    with serve(driver) as power:
        code, output = invoke(power, "--help")
    assert code == 0
    assert "Bench PSU of the DUT" in output
    assert "Power up the DUT" in output
