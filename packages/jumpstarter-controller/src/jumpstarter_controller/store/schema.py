"""The tables (SQLAlchemy Core). Times are seconds since the epoch (float), maps and lists JSON.

Changing a table needs a new migration in `migrations/versions` (the schema is created by
migrations only, never by `create_all`).
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Float, Integer, MetaData, String, Table, Text

metadata = MetaData()

clients = Table(
    "clients",
    metadata,
    Column("namespace", String(63), primary_key=True),
    Column("name", String(63), primary_key=True),
    Column("labels", JSON, nullable=False),
    Column("token_version", Integer, nullable=False),
    Column("created", Float, nullable=False),
)

exporters = Table(
    "exporters",
    metadata,
    Column("namespace", String(63), primary_key=True),
    Column("name", String(63), primary_key=True),
    Column("uuid", String(36), nullable=False),
    Column("labels", JSON, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("devices", JSON, nullable=True),
    Column("status", Integer, nullable=False),
    Column("status_message", Text, nullable=False),
    Column("last_seen", Float, nullable=False),
    Column("lease", String(63), nullable=True),
    Column("ack_pending", Boolean, nullable=False),
    Column("notice_sent", Boolean, nullable=False),
    Column("last_used", Float, nullable=False),
    Column("token_version", Integer, nullable=False),
    Column("created", Float, nullable=False),
)

leases = Table(
    "leases",
    metadata,
    Column("namespace", String(63), primary_key=True),
    Column("name", String(63), primary_key=True),
    Column("client", String(63), nullable=False),
    Column("selector", Text, nullable=False),
    Column("exporter_name", String(63), nullable=False),
    Column("allow_disabled", Boolean, nullable=False),
    Column("duration", Float, nullable=True),
    Column("begin_time", Float, nullable=True),
    Column("end_time", Float, nullable=True),
    Column("tags", JSON, nullable=False),
    Column("context", JSON, nullable=False),
    Column("created", Float, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("exporter", String(63), nullable=True),
    Column("effective_begin", Float, nullable=True),
    Column("effective_end", Float, nullable=True),
    Column("released", Boolean, nullable=False),
    Column("ended", Boolean, nullable=False, index=True),
    Column("conditions", JSON, nullable=False),
)

policies = Table(
    "policies",
    metadata,
    Column("name", String(253), primary_key=True),
    Column("spec", JSON, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("who", String(255), nullable=False),
    Column("what", String(255), nullable=False),
    Column("namespace", String(63), nullable=False),
    Column("lease", String(63), nullable=False),
    Column("exporter", String(63), nullable=False),
    Column("client", String(63), nullable=False),
    Column("why", Text, nullable=False),
)
