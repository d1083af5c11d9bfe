"""The flow runs incidents refer to: the Prefect API each lives on, and the lease of the process executing it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08

Self-contained like the earlier revisions (no imports from ``remediation``).

A reconciler pointed at another Prefect API found no run for any incident and closed them all as "run missing";
a SIGKILLed process left its run Running (or Paused) in Prefect for ever, and its incident open. ``flow_runs`` has
one row per run: ``api_url``/``api_id`` name the API that owns it (a reconciler leaves other APIs' incidents alone),
and ``holder``/``renewed_at``/``expires_at`` are the lease its executing process renews; ``released_at`` marks a
lease given back on purpose, ``reclaimed_at``/``reclaimed_by`` one a reconciler found lapsed and acted on (see
``remediation/store/flow_runs.py``). No foreign key: a run's row may precede the incident it opens.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "flow_runs",
        sa.Column("flow_run_id", sa.String(64), nullable=False),
        sa.Column("api_url", sa.Text(), nullable=True),
        sa.Column("api_id", sa.String(64), nullable=True),
        sa.Column("holder", sa.String(255), nullable=True),
        sa.Column("acquired_at", _ts(), nullable=True),
        sa.Column("renewed_at", _ts(), nullable=True),
        sa.Column("expires_at", _ts(), nullable=True),
        sa.Column("released_at", _ts(), nullable=True),
        sa.Column("reclaimed_at", _ts(), nullable=True),
        sa.Column("reclaimed_by", sa.String(255), nullable=True),
        sa.PrimaryKeyConstraint("flow_run_id", name="pk_flow_runs"),
    )


def downgrade() -> None:
    op.drop_table("flow_runs")
