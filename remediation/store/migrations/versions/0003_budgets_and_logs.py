"""A request budget shared by every process reading one app; app log lines received from a log drain.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06

Self-contained like 0001 and 0002 (no imports from ``remediation``).

``rate_budgets`` holds one token bucket per budget key (the app URL a deployment reads): every process that
reads the app takes its tokens from the same row under a row lock, so N runs at once stay within the one
budget the app allows per IP. ``app_log_lines`` keeps the app's own JSON log lines as a log drain delivered
them (Vercel Log Drains), for the runbooks' log readers; old lines are pruned by the receiver.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "rate_budgets",
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("tokens", sa.Float(), nullable=False),
        sa.Column("refilled_at", sa.Float(), nullable=False),
        sa.Column("blocked_until", sa.Float(), server_default=sa.text("0"), nullable=False),
        sa.Column("block_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("key", name="pk_rate_budgets"),
    )
    op.create_table(
        "app_log_lines",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("logged_at", _ts(), nullable=False),
        sa.Column("received_at", _ts(), nullable=False),
        sa.Column("stream", sa.String(32), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("raw", _json(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_app_log_lines"),
    )
    op.create_index("ix_app_log_lines_logged_at", "app_log_lines", ["logged_at"])


def downgrade() -> None:
    op.drop_index("ix_app_log_lines_logged_at", table_name="app_log_lines")
    op.drop_table("app_log_lines")
    op.drop_table("rate_budgets")
