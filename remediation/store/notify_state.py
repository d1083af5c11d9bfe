"""What the notification channels did outside, per incident, so that a restarted ``remediate serve`` carries on.

* ``notify_pages``: each on-call tier PagerDuty was asked to page for an incident. An answer to the approval
  acknowledges every open one and a recovery resolves them, whichever process sends that event: a restart between
  the page and the answer no longer leaves the tiers paged before it ringing.
* ``notify_statuspage_incidents``: the public Statuspage incident opened for an incident and the status last posted,
  so that later steps update that incident (and do not post "monitoring" twice) instead of opening a second one.

Neither table references ``incidents``: they mirror what an external system holds under our incident id (the
PagerDuty ``dedup_key``, the Statuspage ``metadata``), and recording what was already sent must never fail on a
bookkeeping constraint. The channels reach these methods through
:class:`remediation.notify.state.NotifyState`, so the notification code does not depend on the store.

:class:`NotifyStateMethods` is mixed into :class:`~remediation.store.Store`; each method is one short transaction.
Writes are upserts (``ON CONFLICT``), so two processes recording the same page both succeed.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from remediation.store.coltypes import UTCDateTime, require_aware
from remediation.store.engine import upsert_insert
from remediation.store.tables import ENUM, ID, Base

#: Statuspage incident and page ids (12 characters today; room to spare).
VENDOR_ID = String(64)


class NotifyPageORM(Base):
    """One tier paged through PagerDuty for one incident; open until ``resolved_at`` is set."""

    __tablename__ = "notify_pages"

    incident_id: Mapped[str] = mapped_column(ID, primary_key=True)
    tier: Mapped[str] = mapped_column(ENUM, primary_key=True)  # primary, secondary, duty_manager
    paged_at: Mapped[datetime] = mapped_column(UTCDateTime)  # first page of this tier for the incident
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class StatuspageIncidentORM(Base):
    """The Statuspage incident opened for one of our incidents on one page (a changed page id starts afresh)."""

    __tablename__ = "notify_statuspage_incidents"

    incident_id: Mapped[str] = mapped_column(ID, primary_key=True)
    page_id: Mapped[str] = mapped_column(VENDOR_ID, primary_key=True)
    statuspage_id: Mapped[str] = mapped_column(VENDOR_ID)
    status: Mapped[str] = mapped_column(ENUM)  # the status last posted: identified, monitoring, resolved
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


@dataclass(frozen=True)
class StatuspageIncidentRow:
    incident_id: str
    page_id: str
    statuspage_id: str
    status: str
    opened_at: datetime
    updated_at: datetime


class NotifyStateMethods:
    """The notification-state half of ``Store``; relies on the store's ``_write``/``_read`` transactions."""

    def _write(self) -> AbstractContextManager[Session]:
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Session]:
        raise NotImplementedError

    # -- PagerDuty: the tiers paged per incident -------------------------------------------------------

    def paged_tiers(self, incident_id: str) -> set[str]:
        """Tiers paged for the incident and not resolved since."""
        query = select(NotifyPageORM.tier).where(NotifyPageORM.incident_id == incident_id,
                                                 NotifyPageORM.resolved_at.is_(None))
        with self._read() as session:
            return set(session.scalars(query))

    def record_page(self, incident_id: str, tier: str, at: datetime) -> None:
        """``tier`` was paged for the incident. A tier paged again after a resolve is open again; ``paged_at``
        keeps the first page."""
        require_aware(at, "at")
        with self._write() as session:
            insert = upsert_insert(session, NotifyPageORM).values(incident_id=incident_id, tier=tier, paged_at=at,
                                                             resolved_at=None)
            session.execute(insert.on_conflict_do_update(index_elements=[NotifyPageORM.incident_id,
                                                                         NotifyPageORM.tier],
                                                         set_={"resolved_at": None}))

    def resolve_pages(self, incident_id: str, tiers: Iterable[str], at: datetime) -> None:
        """Close the given tiers' pages (the others stay open)."""
        require_aware(at, "at")
        names = list(tiers)
        if not names:
            return
        with self._write() as session:
            session.execute(update(NotifyPageORM).where(
                NotifyPageORM.incident_id == incident_id, NotifyPageORM.tier.in_(names),
                NotifyPageORM.resolved_at.is_(None)).values(resolved_at=at))

    # -- Statuspage: the public incident per incident --------------------------------------------------

    def statuspage_incident(self, incident_id: str, page_id: str) -> StatuspageIncidentRow | None:
        with self._read() as session:
            row = session.get(StatuspageIncidentORM, (incident_id, page_id))
            if row is None:
                return None
            return StatuspageIncidentRow(incident_id=row.incident_id, page_id=row.page_id,
                                         statuspage_id=row.statuspage_id, status=row.status,
                                         opened_at=row.opened_at, updated_at=row.updated_at)

    def record_statuspage_incident(self, incident_id: str, page_id: str, statuspage_id: str, status: str,
                                   at: datetime) -> None:
        """Insert or update the incident's Statuspage incident on ``page_id``; ``opened_at`` keeps the first."""
        require_aware(at, "at")
        with self._write() as session:
            insert = upsert_insert(session, StatuspageIncidentORM).values(
                incident_id=incident_id, page_id=page_id, statuspage_id=statuspage_id, status=status,
                opened_at=at, updated_at=at)
            session.execute(insert.on_conflict_do_update(
                index_elements=[StatuspageIncidentORM.incident_id, StatuspageIncidentORM.page_id],
                set_={"statuspage_id": insert.excluded.statuspage_id, "status": insert.excluded.status,
                      "updated_at": insert.excluded.updated_at}))
