"""Conventions of the jumpstarter.v1 protocol shared by exporters and clients: limits, options, names."""

from __future__ import annotations

# One call's arguments or result may be this large. The original jumpstarter keeps gRPC's
# 4 MiB default; bulk data belongs in byte streams or resources either way.
MAX_MESSAGE_BYTES = 128 * 1024 * 1024

# What a peer of the original jumpstarter 0.9.0 accepts in one message.
LEGACY_MAX_MESSAGE_BYTES = 4 * 1024 * 1024

CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]

# How often our clients ping an exporter that advertises CAPABILITY_KEEPALIVE, and how long
# they wait for its answer: a frozen exporter is noticed within about ten seconds.
KEEPALIVE_SECONDS = 5

SERVER_OPTIONS = [
    *CHANNEL_OPTIONS,
    # Our clients ping every KEEPALIVE_SECONDS, those of the original every 20 s, even when idle.
    ("grpc.http2.min_ping_interval_without_data_ms", (KEEPALIVE_SECONDS - 1) * 1000),
    ("grpc.keepalive_permit_without_calls", 1),
    # A client that vanished without closing its connection (a cable pulled) is noticed too.
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.http2.ping_timeout_ms", 20_000),
]

# Reserved labels of driver reports: the client class of every driver, the name of every child.
CLIENT_LABEL = "jumpstarter.dev/client"
NAME_LABEL = "jumpstarter.dev/name"

# Optional protocol features, advertised in GetReportResponse.capabilities.
CAPABILITY_TYPED_VALUES = "typed-values"
# The exporter accepts pings every KEEPALIVE_SECONDS from a client, even an idle one (the
# original refuses pings more often than every 10 s on TCP, every 5 minutes on a Unix socket).
CAPABILITY_KEEPALIVE = "keepalive"
# The exporter takes and sends large bytes values beside the call's messages (BulkValue in
# values.proto), each over a RouterService.Stream of its own: see jumpstarter.common.wire.
CAPABILITY_BULK_VALUES = "bulk-values"

# Bytes values of at least this size travel as BulkValues between peers that advertise
# "bulk-values". From here on, a stream of their own costs less time and memory than a
# message, where each side holds three or four copies of a value in buffers beyond the
# allocator's mmap threshold (measured, cross-process: equal at 4 MiB, 4x faster at 8 MiB).
BULK_MIN_BYTES = 4 * 1024 * 1024
# The largest bytes value that may travel as a BulkValue.
BULK_MAX_BYTES = 2 * 1024 * 1024 * 1024
# The frames that carry a bulk value's bytes: larger than those of byte streams (fewer
# messages, and both peers are ours), and below the allocator's mmap threshold
# (jumpstarter.common.allocator), so that their buffers are reused rather than mapped anew.
BULK_FRAME_BYTES = 2 * 1024 * 1024

# Trailing metadata with which an exporter marks errors raised by a driver (value: the
# exception's class name), so that a client can tell them from transport failures.
ERROR_CLASS_METADATA_KEY = "jumpstarter-error"

# Where a client re-logs the records it receives over LogStream (`jumpstarter.remote.<source>`).
# A client and an exporter may share one process (serve()): the exporter never sends records
# from these loggers back.
CLIENT_RELAY_LOGGER_PREFIX = "jumpstarter.remote"

# Log barriers (our own peers only): a client names its LogStream with this metadata, and
# before closing it asks for a barrier with LOG_BARRIER_METADATA_KEY (on a GetStatus call);
# the exporter then sends a record whose structured_fields hold LOG_BARRIER_FIELD, after
# every record emitted so far. Other exporters ignore the metadata.
LOG_CONSUMER_METADATA_KEY = "jumpstarter-log-consumer"
LOG_BARRIER_METADATA_KEY = "jumpstarter-log-barrier"
LOG_BARRIER_FIELD = "jumpstarter-barrier"

# Waiting for a status change (our own peers only): a GetStatus call whose metadata holds
# STATUS_AFTER_METADATA_KEY with the status_version the client has seen is answered with the
# status that followed that version, once there is one (the current status after at most
# STATUS_WAIT_SECONDS). The exporter marks its initial metadata with the same key; other
# exporters answer at once, unmarked, and the client polls them.
STATUS_AFTER_METADATA_KEY = "jumpstarter-status-after"
STATUS_WAIT_SECONDS = 20.0
