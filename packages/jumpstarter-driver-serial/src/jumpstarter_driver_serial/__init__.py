"""Jumpstarter drivers for serial consoles, on pyserial.

- `jumpstarter_driver_serial.driver`: `PySerial` (a port named by a pyserial URL) and
  `LoopbackSerial` (``loop://``); imported by exporters, it imports pyserial.
- `jumpstarter_driver_serial.client`: `PySerialClient` (stream, `open()` console, DTR, RTS,
  break, baud rate, ``j serial ...``); imported by clients, it imports neither pyserial nor
  the driver module.
- `jumpstarter_driver_serial.console`: `SerialConsole`, the pexpect spawn of `open()`.
- `jumpstarter_driver_serial.errors`: the `ConnectionError`s the driver raises.

This package module imports nothing, so that importing either side stays light.
"""
