"""Jumpstarter: test real hardware from anywhere.

Drivers (`jumpstarter.driver`) run next to the hardware and are served over the
jumpstarter.v1 gRPC protocol by an exporter; driver clients (`jumpstarter.client`)
call them as if the hardware were local. `jumpstarter.testing.serve` runs both
ends in one process, for tests and examples.
"""
