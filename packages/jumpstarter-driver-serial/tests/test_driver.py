"""Configuration of the drivers, and the errors that say what is wrong with a port."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from jumpstarter_driver_serial import driver as driver_module
from jumpstarter_driver_serial.driver import LoopbackSerial, PySerial
from jumpstarter_driver_serial.errors import SerialPortDenied, SerialPortMissing

from jumpstarter.config.exporter import ConfigError, parse_exporter_config
from jumpstarter.registry import installed_drivers, resolve_driver
from testsupport.pty import PseudoTerminal

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"url": ""}, "url must name the port"),
        ({"url": "ftp://host:21"}, "pyserial knows no ftp:// ports"),
        ({"url": "rfc2217://lab-serial"}, "write rfc2217://host:port, with the host and the TCP port"),
        ({"url": "socket://:4000"}, "write socket://host:port"),
        ({"url": "loop://", "baudrate": 0}, "baudrate must be a positive whole number"),
        ({"url": "loop://", "bytesize": 9}, "bytesize must be one of 5, 6, 7, 8, not 9"),
        ({"url": "loop://", "parity": "X"}, "parity must be N, E, O, M or S"),
        ({"url": "loop://", "stopbits": 3}, "stopbits must be 1, 1.5 or 2, not 3"),
        ({"url": "loop://", "cps": 0}, "cps must be a positive number"),
    ],
)
def test_settings_are_checked(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        PySerial(**settings)


def test_parity_may_be_spelled_out() -> None:
    assert PySerial(url="loop://", parity="even").parity == "E"
    assert PySerial(url="loop://", parity="s").parity == "S"


def test_a_missing_device_lists_what_udev_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    by_id = tmp_path / "by-id"
    monkeypatch.setattr(driver_module, "BY_ID_DIR", str(by_id))
    with pytest.raises(SerialPortMissing) as caught:
        PySerial(url="/dev/ttyUSB7")
    assert str(caught.value) == (
        f"no serial device at /dev/ttyUSB7: is it plugged in, and its board powered? There is no {by_id}: no USB "
        "serial device is plugged in (or udev does not run here). If the device appears later (once the board is "
        "powered, say), set check_present: false and it is opened when a client connects"
    )
    by_id.mkdir()
    with PseudoTerminal() as line:
        (by_id / "usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0").symlink_to(line.url)
        (by_id / "usb-Silicon_Labs_CP2102_0001-if00-port0").symlink_to("/dev/ttyUSB3")
        with pytest.raises(SerialPortMissing) as caught:
            PySerial(url="/dev/ttyUSB7")
        assert f"{by_id} holds: {by_id}/usb-FTDI_FT232R_USB_UART_A50285BI-if00-port0 -> {line.url}, " in str(
            caught.value
        )
        assert f"{by_id}/usb-Silicon_Labs_CP2102_0001-if00-port0 -> /dev/ttyUSB3" in str(caught.value)


def test_permission_denied_says_how_to_get_access(pty_line: PseudoTerminal) -> None:
    driver = PySerial(url=pty_line.url)
    if os.geteuid() != 0:
        os.chmod(pty_line.url, 0)
        with pytest.raises(SerialPortDenied) as caught:
            driver._open_port()
        message = str(caught.value)
    else:
        message = _open_as_nobody(driver)
    user, group = re.search(r"runs as (\S+), who is not in the group '([^']+)'", message).groups()
    assert message.startswith(f"permission denied opening {pty_line.url} (c")
    assert f"`sudo usermod -aG {group} {user}`" in message
    assert 'SUBSYSTEM=="tty"' in message and f'GROUP="{group}", MODE="0660"' in message


def _open_as_nobody(driver: PySerial) -> str:
    """Root may open anything: open the port with the effective user nobody (no fork: gRPC is active here)."""
    os.seteuid(65534)
    try:
        driver._open_port()
    except SerialPortDenied as error:
        return str(error)
    finally:
        os.seteuid(0)
    raise AssertionError("nobody opened the port")


def test_loopback_serial_is_always_loop() -> None:
    assert LoopbackSerial().url == "loop://"
    with pytest.raises(TypeError):
        LoopbackSerial(url="/dev/ttyUSB0")


def test_both_drivers_are_installed() -> None:
    names = {entry.name: entry for entry in installed_drivers()}
    assert names["PySerial"].distribution == "jumpstarter-driver-serial"
    assert names["LoopbackSerial"].distribution == "jumpstarter-driver-serial"
    assert resolve_driver("PySerial") is PySerial
    assert resolve_driver("LoopbackSerial") is LoopbackSerial


CONFIG = """\
metadata: {name: bench}
export:
  console:
    type: PySerial
    config:
      url: %s
      baudrate: "921600"
      parity: even
      stopbits: 1.5
      cps: 200
"""


def test_an_exporter_config_converts_the_settings(pty_line: PseudoTerminal) -> None:
    tree = parse_exporter_config(CONFIG % pty_line.url).build()
    console = tree.children["console"]
    assert isinstance(console, PySerial)
    assert (console.baudrate, console.parity, console.stopbits, console.cps) == (921600, "E", 1.5, 200.0)


def test_an_exporter_config_with_a_missing_device_fails_at_its_line() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_exporter_config(CONFIG % "/dev/ttyUSB7", name="bench.yaml").build()
    message = str(caught.value)
    assert message.startswith("bench.yaml:3:3: at export.console: creating jumpstarter_driver_serial.driver.PySerial")
    assert "SerialPortMissing: no serial device at /dev/ttyUSB7" in message
    assert "set check_present: false" in message


def test_loopback_serial_takes_no_url_in_a_config() -> None:
    with pytest.raises(ConfigError, match=r"url"):
        parse_exporter_config(
            "metadata: {name: bench}\nexport:\n  loop:\n    type: LoopbackSerial\n    config: {url: /dev/ttyS0}\n"
        ).build()


def readme_exporter_configs() -> list[str]:
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(), re.DOTALL)
    return [block for block in blocks if "export:" in block]


def test_the_readme_has_an_example_for_each_kind_of_url() -> None:
    text = "\n".join(readme_exporter_configs())
    for kind in (
        "url: /dev/serial/by-id/",
        "url: rfc2217://",
        "url: socket://",
        "type: LoopbackSerial",
        "url: loop://",
    ):
        assert kind in text, f"no README example with {kind}"


@pytest.mark.parametrize("example", readme_exporter_configs(), ids=lambda text: text.split("url: ")[-1][:30])
def test_the_readme_examples_load(example: str) -> None:
    config = parse_exporter_config(example, name="README.md")
    if "url: /dev/" in example and "check_present: false" not in example:
        # Device paths of the author's lab: building checks that the device is there.
        with pytest.raises(ConfigError, match="no serial device at /dev/"):
            config.build()
        return
    tree = config.build()  # network ports are only opened when a client connects
    try:
        assert tree.children
        for driver in tree.children.values():
            assert isinstance(driver, PySerial)
    finally:
        for driver in tree.children.values():
            driver.close()
