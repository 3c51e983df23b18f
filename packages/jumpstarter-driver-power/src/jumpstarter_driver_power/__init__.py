"""Jumpstarter power drivers: USB hub ports, USB and serial relays, command-line PDUs, and mocks.

The modules, each with one job (nothing is imported here, so that a client never loads the
drivers' hardware libraries):

- `common`: `PowerReading` and the errors of missing features, shared by drivers and client;
- `client`: `PowerClient`, with its command line;
- `driver`: `PowerInterface` and the mocks, `MockPower` and `SyncMockPower`;
- `usbhub`, `usbrelay`, `serialrelay`, `command`: the drivers for real hardware;
- `usbdevice`: what the two pyusb drivers share (finding the device, clear errors);
- `errors`, `settings`: the drivers' exceptions and configuration checks.
"""
