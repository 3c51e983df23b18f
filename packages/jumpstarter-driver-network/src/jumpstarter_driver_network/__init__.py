"""Jumpstarter network drivers: a TCP or UDP port, or a Unix socket, near the exporter, reached from clients.

Drivers (for exporters) are in `jumpstarter_driver_network.driver`: `TcpNetwork`,
`UdpNetwork`, `UnixNetwork` and `EchoNetwork`. Their client, with its port forwards, is
`jumpstarter_driver_network.client.NetworkClient`. Importing this package imports neither.
"""
