"""The first schema: clients, exporters, leases, policies and the events audit trail."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "clients",
        sa.Column("namespace", sa.String(63), primary_key=True),
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("token_version", sa.Integer, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
    )
    op.create_table(
        "exporters",
        sa.Column("namespace", sa.String(63), primary_key=True),
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("uuid", sa.String(36), nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("devices", sa.JSON, nullable=True),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("status_message", sa.Text, nullable=False),
        sa.Column("last_seen", sa.Float, nullable=False),
        sa.Column("lease", sa.String(63), nullable=True),
        sa.Column("ack_pending", sa.Boolean, nullable=False),
        sa.Column("notice_sent", sa.Boolean, nullable=False),
        sa.Column("last_used", sa.Float, nullable=False),
        sa.Column("token_version", sa.Integer, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
    )
    op.create_table(
        "leases",
        sa.Column("namespace", sa.String(63), primary_key=True),
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("client", sa.String(63), nullable=False),
        sa.Column("selector", sa.Text, nullable=False),
        sa.Column("exporter_name", sa.String(63), nullable=False),
        sa.Column("allow_disabled", sa.Boolean, nullable=False),
        sa.Column("duration", sa.Float, nullable=True),
        sa.Column("begin_time", sa.Float, nullable=True),
        sa.Column("end_time", sa.Float, nullable=True),
        sa.Column("tags", sa.JSON, nullable=False),
        sa.Column("context", sa.JSON, nullable=False),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("exporter", sa.String(63), nullable=True),
        sa.Column("effective_begin", sa.Float, nullable=True),
        sa.Column("effective_end", sa.Float, nullable=True),
        sa.Column("released", sa.Boolean, nullable=False),
        sa.Column("ended", sa.Boolean, nullable=False),
        sa.Column("conditions", sa.JSON, nullable=False),
    )
    op.create_index("ix_leases_ended", "leases", ["ended"])
    op.create_table(
        "policies",
        sa.Column("name", sa.String(253), primary_key=True),
        sa.Column("spec", sa.JSON, nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("who", sa.String(255), nullable=False),
        sa.Column("what", sa.String(255), nullable=False),
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("lease", sa.String(63), nullable=False),
        sa.Column("exporter", sa.String(63), nullable=False),
        sa.Column("client", sa.String(63), nullable=False),
        sa.Column("why", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in ("events", "policies", "leases", "exporters", "clients"):
        op.drop_table(table)
