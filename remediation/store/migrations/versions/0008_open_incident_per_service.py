"""One open alert-opened incident per (runbook, service): cross-source dedupe.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-10

Self-contained like the earlier revisions (no imports from ``remediation``).

The incident key includes the source's grouping fingerprint, so one outage seen by Alertmanager (a
``groupKey``) and by Sentry (an issue) had two keys, two incidents and two runs of the same runbook on the
same service. Intake now attaches an alert to the open incident of its (runbook, service) whatever its
key; this partial unique index is what makes that hold with several receiver processes: two transactions
that both find nothing open and both insert cannot both commit. Only incidents intake opened (a non-NULL
``incident_key``) count, so manual and drill runs are unaffected.

``alerts.incident_key`` records each alert's own key, since an attached alert's key may now differ from its
incident's: the reopen cooldown and a late resolution look a key's incident up through it. Existing rows
are backfilled from their incident's key (before this revision the two were always the same).

A database that already holds two open alert-opened incidents of one (runbook, service) cannot take the
index; rather than close somebody's incident from a migration, the upgrade stops and names them (the
whole revision rolls back, transactional DDL).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN_FROM_ALERTS = "status = 'open' AND incident_key IS NOT NULL"


def upgrade() -> None:
    clashes = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT runbook, service, id FROM incidents WHERE "
                + OPEN_FROM_ALERTS
                + " AND (runbook, service) IN (SELECT runbook, service FROM incidents WHERE "
                + OPEN_FROM_ALERTS
                + " GROUP BY runbook, service HAVING COUNT(*) > 1) ORDER BY runbook, service, id"
            )
        )
        .all()
    )
    if clashes:
        named = ", ".join(f"{row.id} ({row.runbook} on {row.service})" for row in clashes)
        raise RuntimeError(
            "migration 0008 needs at most one open alert-opened incident per runbook and service; "
            f"these are open together: {named}. Let their runs finish (or `remediate reconcile` close "
            "the ones whose run is gone), then upgrade again."
        )
    op.add_column("alerts", sa.Column("incident_key", sa.String(255), nullable=True))
    op.execute(
        "UPDATE alerts SET incident_key = "
        "(SELECT incidents.incident_key FROM incidents WHERE incidents.id = alerts.incident_id) "
        "WHERE incident_id IS NOT NULL"
    )
    op.create_index("ix_alerts_incident_key", "alerts", ["incident_key"])
    op.create_index(
        "uq_incidents_open_runbook_service",
        "incidents",
        ["runbook", "service"],
        unique=True,
        sqlite_where=sa.text(OPEN_FROM_ALERTS),
        postgresql_where=sa.text(OPEN_FROM_ALERTS),
    )


def downgrade() -> None:
    op.drop_index("uq_incidents_open_runbook_service", table_name="incidents")
    op.drop_index("ix_alerts_incident_key", table_name="alerts")
    op.drop_column("alerts", "incident_key")
