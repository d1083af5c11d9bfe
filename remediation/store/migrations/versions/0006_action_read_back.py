"""The ledger keeps what reading the platform back showed after a lever's answer was lost.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08

Self-contained like the earlier revisions (no imports from ``remediation``).

A lever call that times out may have taken effect. The gate then reads the platform back and records the action
``applied`` or ``failed`` on that evidence, or ``unknown`` when the read fails too (``remediation.outcomes``).
``actions.read_back`` keeps that evidence next to the state it justifies; NULL for every action settled by the
lever's own answer. The new ``unknown`` state needs no schema change: states are plain strings.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("actions") as batch:
        batch.add_column(sa.Column("read_back", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("actions") as batch:
        batch.drop_column("read_back")
