"""The flow runs incidents refer to: which Prefect API each lives on, and whether the process executing it is alive.

An incident names its run by ``incidents.flow_run_id``; the run itself lives on one Prefect API. Several ``remediate
serve`` processes (replicas, or a test stack beside a production one) may share one store while talking to
different APIs, and only the API that holds a run can tell whether it is finished. ``flow_runs`` records, per run:

* **its owner**: the API's URL and identity (``remediation.orchestration.prefect_identity``), written by whoever
  creates or executes the run, or by a reconciler that found the run on its own API. A reconciler never closes an
  incident whose run is owned by another API.
* **its lease**: the process executing the run (``holder``: host and pid) renews it every few seconds
  (``remediation.orchestration.leases``). A lease not renewed by ``expires_at`` means that process is gone
  (SIGKILL, OOM, a lost host), whatever the run's last state in Prefect says (Running after a resume, Paused,
  Pending): a reconciler then *reclaims* it, exactly once across replicas, crashes the run and closes the incident.
  A lease the holder gave back on purpose (``released_at``: the run ended, or was suspended to survive a restart) is
  not a death.

Times come from the caller's clock, like every timestamp in the store: hosts sharing a store must keep their clocks
in sync (NTP) to well within the lease (a minute by default). The table does not reference ``incidents``: a run's
row may come before its incident is opened (the run opens it) and outlive its incident's ``flow_run_id``.

:class:`FlowRunMethods` is mixed into :class:`~remediation.store.Store`; each method is one short transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import CursorResult, String, Text, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from remediation.models import utcnow
from remediation.store.coltypes import UTCDateTime, require_aware
from remediation.store.engine import upsert_insert
from remediation.store.rows import IncidentStatus
from remediation.store.tables import ID, Base, IncidentORM

#: ``host:pid`` of a lease holder, or of the reconciler that reclaimed a lease.
HOLDER = String(255)


class FlowRunORM(Base):
    """One flow run an incident refers to (or will): its Prefect API, and the lease of the process executing it."""

    __tablename__ = "flow_runs"

    flow_run_id: Mapped[str] = mapped_column(ID, primary_key=True)
    api_url: Mapped[str | None] = mapped_column(Text)  # normalised; None: not known yet
    api_id: Mapped[str | None] = mapped_column(ID)  # the API's identity (prefect_identity); None: could not be read
    holder: Mapped[str | None] = mapped_column(HOLDER)  # None: nobody ever executed it under a lease
    acquired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    renewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # given back by its holder
    reclaimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # declared dead by a reconciler
    reclaimed_by: Mapped[str | None] = mapped_column(HOLDER)


class LeaseState(StrEnum):
    NONE = "none"  # no process ever took it (not started yet, or started by something that takes no lease)
    HELD = "held"  # renewed in time
    RELEASED = "released"  # given back: the run ended, or waits without a process (suspended)
    LAPSED = "lapsed"  # not renewed in time: its holder is gone
    RECLAIMED = "reclaimed"  # a reconciler declared the holder dead


@dataclass(frozen=True)
class FlowRunRecord:
    flow_run_id: str
    api_url: str | None
    api_id: str | None
    holder: str | None
    acquired_at: datetime | None
    renewed_at: datetime | None
    expires_at: datetime | None
    released_at: datetime | None
    reclaimed_at: datetime | None
    reclaimed_by: str | None

    def lease(self, now: datetime) -> LeaseState:
        if self.reclaimed_at is not None:
            return LeaseState.RECLAIMED
        if self.released_at is not None:
            return LeaseState.RELEASED
        if self.expires_at is None:
            return LeaseState.NONE
        return LeaseState.HELD if self.expires_at >= now else LeaseState.LAPSED

    @classmethod
    def from_orm_row(cls, row: FlowRunORM) -> FlowRunRecord:
        return cls(flow_run_id=row.flow_run_id, api_url=row.api_url, api_id=row.api_id, holder=row.holder,
                   acquired_at=row.acquired_at, renewed_at=row.renewed_at, expires_at=row.expires_at,
                   released_at=row.released_at, reclaimed_at=row.reclaimed_at, reclaimed_by=row.reclaimed_by)


@dataclass(frozen=True)
class LeaseRenewal:
    """What a renewal found. ``held`` false: the lease was reclaimed (or taken by another holder) meanwhile.
    ``incident_open``: whether the incident naming this run is open (None: no incident names it yet)."""

    held: bool
    incident_open: bool | None


def _rowcount(result: Any) -> int:
    return int(cast("CursorResult[Any]", result).rowcount)


class FlowRunMethods:
    """The flow-run half of ``Store``; relies on the store's ``_write``/``_read`` transactions."""

    def _write(self) -> AbstractContextManager[Session]:
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Session]:
        raise NotImplementedError

    # -- ownership -------------------------------------------------------------------------------------

    def record_run_owner(self, flow_run_id: str, *, api_url: str, api_id: str | None) -> None:
        """``flow_run_id`` lives on this API. Insert, or fill in and correct an existing row (a run id names one
        run on one API: whoever just created, executed or found it there knows best)."""
        with self._write() as session:
            insert = upsert_insert(session, FlowRunORM).values(flow_run_id=flow_run_id, api_url=api_url, api_id=api_id)
            session.execute(insert.on_conflict_do_update(
                index_elements=[FlowRunORM.flow_run_id],
                set_={"api_url": insert.excluded.api_url, "api_id": insert.excluded.api_id}))

    def flow_runs(self, flow_run_ids: Iterable[str]) -> dict[str, FlowRunRecord]:
        """The rows of these runs; a run without a row is absent."""
        ids = sorted(set(flow_run_ids))
        if not ids:
            return {}
        with self._read() as session:
            rows = session.scalars(select(FlowRunORM).where(FlowRunORM.flow_run_id.in_(ids)))
            return {row.flow_run_id: FlowRunRecord.from_orm_row(row) for row in rows}

    # -- leases ----------------------------------------------------------------------------------------

    def take_run_lease(self, flow_run_id: str, *, holder: str, ttl_s: float, api_url: str, api_id: str | None,
                       now: datetime | None = None) -> None:
        """``holder`` executes the run from now on: the lease is (re)taken whatever its state, since Prefect lets
        exactly one executor claim a run (its ``Pending`` transition), and a run suspended and resumed is executed
        again by a new process. Records the owner too."""
        at = require_aware(now, "now") if now else utcnow()
        values = {"api_url": api_url, "api_id": api_id, "holder": holder, "acquired_at": at, "renewed_at": at,
                  "expires_at": at + timedelta(seconds=ttl_s), "released_at": None, "reclaimed_at": None,
                  "reclaimed_by": None}
        with self._write() as session:
            insert = upsert_insert(session, FlowRunORM).values(flow_run_id=flow_run_id, **values)
            session.execute(insert.on_conflict_do_update(index_elements=[FlowRunORM.flow_run_id], set_=values))

    def renew_run_lease(self, flow_run_id: str, *, holder: str, ttl_s: float,
                        now: datetime | None = None) -> LeaseRenewal:
        """Push the lease's expiry ``ttl_s`` past ``now``, only while ``holder`` still holds it."""
        at = require_aware(now, "now") if now else utcnow()
        with self._write() as session:
            renewed = _rowcount(session.execute(
                update(FlowRunORM)
                .where(FlowRunORM.flow_run_id == flow_run_id, FlowRunORM.holder == holder,
                       FlowRunORM.released_at.is_(None), FlowRunORM.reclaimed_at.is_(None))
                .values(renewed_at=at, expires_at=at + timedelta(seconds=ttl_s))))
            statuses = set(session.scalars(select(IncidentORM.status).where(IncidentORM.flow_run_id == flow_run_id)))
        incident_open = (IncidentStatus.OPEN.value in statuses) if statuses else None
        return LeaseRenewal(held=renewed == 1, incident_open=incident_open)

    def release_run_lease(self, flow_run_id: str, *, holder: str, now: datetime | None = None) -> None:
        """``holder`` stops executing the run on purpose (it ended, or is suspended waiting for an answer)."""
        at = require_aware(now, "now") if now else utcnow()
        with self._write() as session:
            session.execute(update(FlowRunORM)
                            .where(FlowRunORM.flow_run_id == flow_run_id, FlowRunORM.holder == holder,
                                   FlowRunORM.released_at.is_(None), FlowRunORM.reclaimed_at.is_(None))
                            .values(released_at=at))

    def reclaim_run_lease(self, flow_run_id: str, *, by: str, retry_after_s: float,
                          now: datetime | None = None) -> FlowRunRecord | None:
        """Declare the holder of a lapsed lease dead; the lease as it was when reclaimed, or None when it is not
        lapsed (renewed meanwhile) or another reconciler reclaimed it first. Exactly one caller wins, whatever the
        number of replicas: the condition and the write are one UPDATE.

        A reclaim older than ``retry_after_s`` may be taken over: its reconciler died before crashing the run."""
        at = require_aware(now, "now") if now else utcnow()
        with self._write() as session:
            before = session.get(FlowRunORM, flow_run_id)
            if before is None:
                return None
            record = FlowRunRecord.from_orm_row(before)
            session.expunge(before)
            won = _rowcount(session.execute(
                update(FlowRunORM)
                .where(FlowRunORM.flow_run_id == flow_run_id, FlowRunORM.released_at.is_(None),
                       FlowRunORM.expires_at < at,
                       or_(FlowRunORM.reclaimed_at.is_(None),
                           FlowRunORM.reclaimed_at < at - timedelta(seconds=retry_after_s)))
                .values(reclaimed_at=at, reclaimed_by=by)))
        return record if won == 1 else None
