"""Initial schema: incidents, the action ledger, approvals, timeline.

Revision ID: 0001
Revises:
Create Date: 2026-05-09

Self-contained on purpose (no imports from ``remediation``): this revision must keep producing the same
schema after ``tables.py`` moves on. Names follow ``tables.NAMING_CONVENTION`` and are spelled out so
later revisions can drop or alter them by name on both backends.

Types: timestamps are ``TIMESTAMP WITH TIME ZONE`` (PostgreSQL) / text (SQLite, values stored as UTC
digits by the application's ``UTCDateTime``); JSON documents are JSONB on PostgreSQL, JSON on SQLite.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.String(64)
NAME = sa.String(128)
ENUM = sa.String(32)
WHO = sa.String(255)


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", ID, nullable=False),
        sa.Column("runbook", NAME, nullable=False),
        sa.Column("service", NAME, nullable=False),
        sa.Column("severity", ENUM, nullable=False),
        sa.Column("mode", ENUM, nullable=False),
        sa.Column("status", ENUM, nullable=False),
        sa.Column("outcome", ENUM, nullable=True),
        sa.Column("incident_key", WHO, nullable=True),
        sa.Column("flow_run_id", ID, nullable=True),
        sa.Column("alert", _json(), nullable=False),
        sa.Column("report", _json(), nullable=True),
        sa.Column("opened_at", _ts(), nullable=False),
        sa.Column("closed_at", _ts(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_incidents"),
    )
    op.create_index("ix_incidents_service_status", "incidents", ["service", "status"])
    op.create_index("ix_incidents_incident_key", "incidents", ["incident_key"])

    op.create_table(
        "actions",
        sa.Column("id", ID, nullable=False),
        sa.Column("incident_id", ID, nullable=False),
        sa.Column("phase", ENUM, nullable=False),
        sa.Column("kind", NAME, nullable=False),
        sa.Column("risk", ENUM, nullable=False),
        sa.Column("service", NAME, nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("plan", _json(), nullable=False),
        sa.Column("decision", ENUM, nullable=False),
        sa.Column("reasons", _json(), nullable=False),
        sa.Column("state", ENUM, nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("approver", WHO, nullable=True),
        sa.Column("started_at", _ts(), nullable=False),
        sa.Column("completed_at", _ts(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_actions"),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"], name="fk_actions_incident_id_incidents"),
    )
    op.create_index("ix_actions_incident_id", "actions", ["incident_id"])
    op.create_index("ix_actions_state", "actions", ["state"])
    op.create_index("ix_actions_service_state", "actions", ["service", "state"])

    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_id", ID, nullable=False),
        sa.Column("action_id", ID, nullable=True),
        sa.Column("answer", ENUM, nullable=False),
        sa.Column("approver", WHO, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_approvals"),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"], name="fk_approvals_incident_id_incidents"),
    )
    op.create_index("ix_approvals_incident_id", "approvals", ["incident_id"])

    op.create_table(
        "timeline",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("incident_id", ID, nullable=False),
        sa.Column("at", _ts(), nullable=False),
        sa.Column("phase", ENUM, nullable=False),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_timeline"),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"], name="fk_timeline_incident_id_incidents"),
    )
    op.create_index("ix_timeline_incident_id", "timeline", ["incident_id"])


def downgrade() -> None:
    op.drop_index("ix_timeline_incident_id", table_name="timeline")
    op.drop_table("timeline")
    op.drop_index("ix_approvals_incident_id", table_name="approvals")
    op.drop_table("approvals")
    op.drop_index("ix_actions_service_state", table_name="actions")
    op.drop_index("ix_actions_state", table_name="actions")
    op.drop_index("ix_actions_incident_id", table_name="actions")
    op.drop_table("actions")
    op.drop_index("ix_incidents_incident_key", table_name="incidents")
    op.drop_index("ix_incidents_service_status", table_name="incidents")
    op.drop_table("incidents")
