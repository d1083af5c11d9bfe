"""The ledger keeps the order its rows were written in.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07

Self-contained like the earlier revisions (no imports from ``remediation``).

Rows were read back by start time, then by their random id. Two actions started at one instant (a clock that does
not move between them: the simulator's virtual time, or a coarse clock) then came back in either order, and what
reads the ledger in order (a continuation's "undone by a later applied row", the report) with them.
``actions.seq`` numbers an incident's rows as they are first written (1, 2, ...) and breaks such ties; rows written
before this revision keep NULL and sort as before.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("actions") as batch:
        batch.add_column(sa.Column("seq", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("actions") as batch:
        batch.drop_column("seq")
