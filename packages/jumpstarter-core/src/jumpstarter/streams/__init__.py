"""Byte streams: the frame protocol over gRPC, copying, compression, and thread bridges.

Public: `ThreadChannel`, the bounded FIFO between worker threads and an event loop that
drivers with blocking hardware I/O use to hand bytes to the loop (and back). The modules
of this package are internal.
"""

from jumpstarter.streams.channel import ThreadChannel

__all__ = ["ThreadChannel"]
