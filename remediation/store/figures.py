"""Counts the service's own metrics are made of, read from the store in one read transaction.

Only aggregates leave this module: group counts (by runbook, service, outcome, kind, ...), the size and age of
the approvals inbox, and the durations of recently closed incidents. Nothing here names an incident, an approver
or an alert's text, so what the metrics endpoint shows can never be more than counts.

Every answer is bounded, so what a scrape exposes does not grow with the store:

* a grouped count returns at most ``max_groups`` groups, the largest first, plus the total, so the caller can
  show what did not fit as one "other" group instead of dropping it;
* durations come from the ``recent`` most recently closed incidents only (a window, not a running total).

The work is not constant, though: the grouped counts scan their table (incidents, actions, approvals) and the
window sorts the closed incidents. At this store's scale (incidents per day, not per second) that is milliseconds;
a store grown to millions of rows would want a purge, or indexes on ``closed_at`` and ``(status, runbook)``.

Plain SQL aggregates (``count``, ``min``, ``GROUP BY``) and Python-side date arithmetic, so the same code runs
on SQLite and PostgreSQL (their date-difference functions differ).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from remediation.models import ActionState, Outcome, Phase
from remediation.store.rows import IncidentStatus
from remediation.store.tables import ActionORM, ApprovalORM, IncidentORM, PendingApprovalORM

DEFAULT_MAX_GROUPS = 100
DEFAULT_RECENT = 500


@dataclass(frozen=True)
class GroupCounts:
    """Row counts per group (a tuple of label values), the largest groups first, and the count over all groups.

    ``total - sum(groups.values())`` rows belong to groups that did not fit within the bound.
    """

    groups: dict[tuple[str, ...], int]
    total: int

    @property
    def rest(self) -> int:
        return self.total - sum(self.groups.values())


@dataclass(frozen=True)
class ClosedIncident:
    """How long one recently closed incident took: only what the duration histograms need."""

    runbook: str
    outcome: str | None
    opened_at: datetime
    closed_at: datetime | None
    first_contained_at: datetime | None  # completion of its first applied CONTAIN action, if any

    @property
    def time_to_contain_s(self) -> float | None:
        if self.first_contained_at is None:
            return None
        return max(0.0, (self.first_contained_at - self.opened_at).total_seconds())

    @property
    def time_to_recover_s(self) -> float | None:
        if self.outcome != Outcome.RECOVERED.value or self.closed_at is None:
            return None
        return max(0.0, (self.closed_at - self.opened_at).total_seconds())


@dataclass(frozen=True)
class StoreFigures:
    open_incidents: GroupCounts  # (runbook, service)
    runs: GroupCounts  # closed incidents by (runbook, outcome)
    actions: GroupCounts  # ledger rows by (kind, decision, state)
    approval_answers: GroupCounts  # recorded answers by (answer,): approved, denied, timeout, refused
    approvals_waiting: int
    oldest_waiting_since: datetime | None  # requested_at of the longest-waiting step
    approvals_overdue_since: datetime | None  # earliest deadline among waiting steps (compare with now)
    recent_closed: tuple[ClosedIncident, ...]


def _grouped(session: Session, columns: Sequence[Any], where: ColumnElement[bool] | None,
             max_groups: int) -> GroupCounts:
    count = func.count().label("n")
    query = select(*columns, count).select_from(columns[0].class_).group_by(*columns)
    total_query = select(func.count()).select_from(columns[0].class_)
    if where is not None:
        query = query.where(where)
        total_query = total_query.where(where)
    # Ties broken by the labels so the same store gives the same series on every scrape.
    query = query.order_by(count.desc(), *columns).limit(max_groups)
    groups = {tuple("" if v is None else str(v) for v in row[:-1]): int(row[-1]) for row in session.execute(query)}
    return GroupCounts(groups=groups, total=int(session.scalar(total_query) or 0))


def _recent_closed(session: Session, recent: int) -> tuple[ClosedIncident, ...]:
    closed = (
        select(IncidentORM.id, IncidentORM.runbook, IncidentORM.outcome, IncidentORM.opened_at, IncidentORM.closed_at)
        .where(IncidentORM.status == IncidentStatus.CLOSED.value)
        .order_by(IncidentORM.closed_at.desc(), IncidentORM.id.desc())
        .limit(recent)
    )
    rows = list(session.execute(closed))
    if not rows:
        return ()
    window = closed.subquery()
    contained = (
        select(ActionORM.incident_id, func.min(ActionORM.completed_at))
        .where(ActionORM.incident_id.in_(select(window.c.id)), ActionORM.phase == Phase.CONTAIN.value,
               ActionORM.state == ActionState.APPLIED.value, ActionORM.completed_at.is_not(None))
        .group_by(ActionORM.incident_id)
    )
    first_contained = dict(session.execute(contained).tuples().all())
    return tuple(
        ClosedIncident(runbook=row.runbook, outcome=row.outcome, opened_at=row.opened_at, closed_at=row.closed_at,
                       first_contained_at=first_contained.get(row.id))
        for row in rows
    )


class FigureMethods:
    """The metrics half of ``Store``; relies on the store's ``_read`` transaction."""

    def _read(self) -> AbstractContextManager[Session]:
        raise NotImplementedError

    def figures(self, *, max_groups: int = DEFAULT_MAX_GROUPS, recent: int = DEFAULT_RECENT) -> StoreFigures:
        """All figures, read in one session. On SQLite that is one snapshot; on PostgreSQL (READ COMMITTED) each
        query sees what was committed when it ran, so two figures may differ by a write made between them (harmless
        for counts scraped every few seconds)."""
        if max_groups < 1 or recent < 0:
            raise ValueError(f"max_groups must be >= 1 and recent >= 0, got {max_groups} and {recent}")
        with self._read() as session:
            is_open = IncidentORM.status == IncidentStatus.OPEN.value
            waiting = session.execute(
                select(func.count(), func.min(PendingApprovalORM.requested_at), func.min(PendingApprovalORM.deadline))
            ).one()
            return StoreFigures(
                open_incidents=_grouped(session, [IncidentORM.runbook, IncidentORM.service], is_open, max_groups),
                runs=_grouped(session, [IncidentORM.runbook, IncidentORM.outcome],
                              IncidentORM.status == IncidentStatus.CLOSED.value, max_groups),
                actions=_grouped(session, [ActionORM.kind, ActionORM.decision, ActionORM.state], None, max_groups),
                approval_answers=_grouped(session, [ApprovalORM.answer], None, max_groups),
                approvals_waiting=int(waiting[0] or 0),
                oldest_waiting_since=waiting[1],
                approvals_overdue_since=waiting[2],
                recent_closed=_recent_closed(session, recent),
            )
