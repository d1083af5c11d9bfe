"""Alerts received by intake; alert counters on incidents; one open incident per dedupe key.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26

Self-contained like 0001 (no imports from ``remediation``). The partial unique index is what makes intake
safe with several receiver processes: two transactions that both find no open incident for a key and both
insert one cannot both commit. Creating it fails (and the whole revision rolls back) if a database already
holds two open incidents with the same non-NULL key; nothing before intake set ``incident_key``.

Columns are added with ``op.add_column`` and dropped with ``op.drop_column`` rather than in batch mode:
SQLite (>= 3.35) does both natively, while a batch rebuild of ``incidents`` would have to drop a table that
other tables reference under ``PRAGMA foreign_keys=ON``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(64)
NAME = sa.String(128)
ENUM = sa.String(32)
OPEN_ONLY = "status = 'open'"


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("incidents", sa.Column("alert_count", sa.Integer(), server_default=sa.text("0"), nullable=False))
    op.add_column("incidents", sa.Column("last_alert_at", _ts(), nullable=True))
    op.create_index(
        "uq_incidents_open_incident_key",
        "incidents",
        ["incident_key"],
        unique=True,
        sqlite_where=sa.text(OPEN_ONLY),
        postgresql_where=sa.text(OPEN_ONLY),
    )

    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_id", ID, nullable=True),
        sa.Column("source", ENUM, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=True),
        sa.Column("status", ENUM, nullable=False),
        sa.Column("routed", sa.Boolean(), nullable=False),
        sa.Column("runbook", NAME, nullable=True),
        sa.Column("service", NAME, nullable=True),
        sa.Column("severity", ENUM, nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("received_at", _ts(), nullable=False),
        sa.Column("payload", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_alerts"),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"], name="fk_alerts_incident_id_incidents"),
    )
    op.create_index("ix_alerts_incident_id", "alerts", ["incident_id"])
    op.create_index("ix_alerts_received_at", "alerts", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_alerts_received_at", table_name="alerts")
    op.drop_index("ix_alerts_incident_id", table_name="alerts")
    op.drop_table("alerts")
    op.drop_index("uq_incidents_open_incident_key", table_name="incidents")
    op.drop_column("incidents", "last_alert_at")
    op.drop_column("incidents", "alert_count")
