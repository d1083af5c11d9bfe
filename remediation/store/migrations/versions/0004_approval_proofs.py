"""Approvals that prove who approved: spent proofs, waiting steps, and the answerer's id on each answer.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07

Self-contained like the earlier revisions (no imports from ``remediation``).

``approval_proofs`` keeps every TOTP time step and signed Slack click already used, keyed by approver, so a
replayed answer is refused. ``pending_approvals`` is the inbox: each step waiting for people, with the binding an
answer must name. ``approvals`` gains ``answer_id`` (the CLI waits for the run's verdict on its own answer) and
``via``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("approvals") as batch:
        batch.add_column(sa.Column("answer_id", sa.String(64), nullable=True))
        batch.add_column(sa.Column("via", sa.String(32), nullable=True))
    op.create_index("ix_approvals_answer_id", "approvals", ["answer_id"])
    op.create_table(
        "approval_proofs",
        sa.Column("approver", sa.String(255), nullable=False),
        sa.Column("proof", sa.String(128), nullable=False),
        sa.Column("incident_id", sa.String(64), nullable=False),
        sa.Column("used_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("approver", "proof", name="pk_approval_proofs"),
    )
    op.create_table(
        "pending_approvals",
        sa.Column("action_id", sa.String(64), nullable=False),
        sa.Column("incident_id", sa.String(64), nullable=False),
        sa.Column("flow_run_id", sa.String(64), nullable=True),
        sa.Column("step", sa.String(255), nullable=False),
        sa.Column("runbook", sa.String(128), nullable=False),
        sa.Column("service", sa.String(128), nullable=False),
        sa.Column("severity", sa.String(32), nullable=False),
        sa.Column("phase", sa.String(32), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("risk", sa.String(32), nullable=False),
        sa.Column("why", sa.Text(), nullable=False),
        sa.Column("evidence", _json(), nullable=False),
        sa.Column("undo", sa.Text(), nullable=False),
        sa.Column("statement", sa.Text(), nullable=True),
        sa.Column("needed", sa.Integer(), nullable=False),
        sa.Column("approved_by", _json(), nullable=False),
        sa.Column("requested_at", _ts(), nullable=False),
        sa.Column("deadline", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("action_id", name="pk_pending_approvals"),
        sa.ForeignKeyConstraint(["incident_id"], ["incidents.id"],
                                name="fk_pending_approvals_incident_id_incidents"),
    )
    op.create_index("ix_pending_approvals_flow_run_id", "pending_approvals", ["flow_run_id"])
    op.create_index("ix_pending_approvals_incident_id", "pending_approvals", ["incident_id"])


def downgrade() -> None:
    op.drop_index("ix_pending_approvals_incident_id", table_name="pending_approvals")
    op.drop_index("ix_pending_approvals_flow_run_id", table_name="pending_approvals")
    op.drop_table("pending_approvals")
    op.drop_table("approval_proofs")
    op.drop_index("ix_approvals_answer_id", table_name="approvals")
    with op.batch_alter_table("approvals") as batch:
        batch.drop_column("via")
        batch.drop_column("answer_id")
