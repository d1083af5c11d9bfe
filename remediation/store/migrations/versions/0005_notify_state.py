"""What the notification channels did outside, per incident: PagerDuty tiers paged, the Statuspage incident opened.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07

Self-contained like the earlier revisions (no imports from ``remediation``).

Both lived in the process's memory, so a restarted ``remediate serve`` could neither acknowledge nor resolve the
tiers paged before the restart, and found the open Statuspage incident only by listing the unresolved ones (and
posted "monitoring" twice). ``notify_pages`` has one row per (incident, tier) paged, open until ``resolved_at``;
``notify_statuspage_incidents`` one row per (incident, Statuspage page) with the status last posted. No foreign
key to ``incidents``: the rows mirror what the vendor holds under our incident id (see
``remediation/store/notify_state.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "notify_pages",
        sa.Column("incident_id", sa.String(64), nullable=False),
        sa.Column("tier", sa.String(32), nullable=False),
        sa.Column("paged_at", _ts(), nullable=False),
        sa.Column("resolved_at", _ts(), nullable=True),
        sa.PrimaryKeyConstraint("incident_id", "tier", name="pk_notify_pages"),
    )
    op.create_table(
        "notify_statuspage_incidents",
        sa.Column("incident_id", sa.String(64), nullable=False),
        sa.Column("page_id", sa.String(64), nullable=False),
        sa.Column("statuspage_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("opened_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("incident_id", "page_id", name="pk_notify_statuspage_incidents"),
    )


def downgrade() -> None:
    op.drop_table("notify_statuspage_incidents")
    op.drop_table("notify_pages")
