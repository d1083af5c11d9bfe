"""Alert ingestion: the dedupe-into-incidents decision, made inside one store transaction.

Kept apart from ``repository.py`` because it is the one write path with a deliberate race in it: several
receiver processes may see the first alert of a group at the same moment. Correctness does not come from
locks held here but from the partial unique indexes ``uq_incidents_open_incident_key`` (one *open* incident
per key) and ``uq_incidents_open_runbook_service`` (one open alert-opened incident per runbook and service,
so two sources reporting one outage race to one incident): the losing transaction's INSERT fails with
``IntegrityError`` and :class:`~remediation.store.Store` retries it, when it finds the winner's incident and
attaches. Rows that already exist are read
``FOR UPDATE`` (PostgreSQL; SQLite serialises writers with ``BEGIN IMMEDIATE``), so a counter increment and
a concurrent ``close_incident`` cannot interleave.

The module-level functions take an open session and never commit; :class:`AlertMethods` (mixed into
``Store``) wraps each in one transaction.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer

from remediation.models import Alert, Mode, Phase, Severity, new_id
from remediation.store.coltypes import require_aware
from remediation.store.rows import AlertRow, AlertStatus, IncidentStatus, IngestResult
from remediation.store.tables import AlertORM, IncidentORM, TimelineORM


@dataclass(frozen=True)
class AlertIn:
    """One alert to ingest, already routed (runbook, service and severity decided by intake)."""

    incident_key: str
    runbook: str
    service: str
    severity: Severity
    alert: Alert
    source: str
    fingerprint: str | None
    status: AlertStatus
    received_at: datetime
    payload: dict[str, Any]
    mode: Mode
    reopen_cooldown_s: float


#: How often ``ingest_alert`` tries after losing the open-incident race. One retry suffices in theory (the
#: winner's incident is visible by then); the rest covers a close and a reopen between attempts.
_INGEST_ATTEMPTS = 5


def _incidents() -> Select[IncidentORM]:
    return select(IncidentORM).options(defer(IncidentORM.report, raiseload=True))


def ingest(session: Session, item: AlertIn) -> IngestResult:
    """Attach ``item`` to the right incident, opening one if needed; see ``Store.ingest_alert``."""
    key = item.incident_key
    open_row = session.scalars(
        _incidents()
        .where(IncidentORM.incident_key == key, IncidentORM.status == IncidentStatus.OPEN.value)
        .with_for_update()
        .limit(1)
    ).first()
    if open_row is not None:
        _attach(session, open_row, item)
        if item.status is AlertStatus.RESOLVED:
            _note(session, open_row.id, item, f"alert {item.alert.name} resolved at source ({item.fingerprint})")
        return _result(open_row)

    sibling = _open_for_service(session, item)
    if sibling is not None and (item.status is AlertStatus.FIRING or _key_attached(session, sibling.id, key)):
        # Another source (or group) already opened this runbook's incident on this service: the same
        # outage, so attach; a resolution goes here only when alerts of its key did.
        first_of_its_kind = not _seen(session, sibling.id, item)
        _attach(session, sibling, item)
        if item.status is AlertStatus.RESOLVED:
            _note(session, sibling.id, item, f"alert {item.alert.name} resolved at source ({item.fingerprint})")
        elif first_of_its_kind:
            # One timeline row per newly attaching source alert, not one per repeat of it.
            _note(
                session,
                sibling.id,
                item,
                f"alert attached from {item.source}",
                detail=f"alert {item.alert.name} ({item.fingerprint})",
            )
        return _result(sibling)

    # The latest incident of this key: one it opened, or one its alerts attached to under another key.
    latest = session.scalars(
        _incidents()
        .where(
            or_(
                IncidentORM.incident_key == key,
                IncidentORM.id.in_(select(AlertORM.incident_id).where(AlertORM.incident_key == key)),
            )
        )
        .order_by(IncidentORM.opened_at.desc(), IncidentORM.id.desc())
        .with_for_update()
        .limit(1)
    ).first()

    if item.status is AlertStatus.RESOLVED:
        # Nothing open to resolve: keep the notification with the incident it most likely belongs to.
        if latest is None:
            _insert_alert(session, None, item)
            return IngestResult(incident_id=None)
        _attach(session, latest, item)
        _note(session, latest.id, item, f"alert {item.alert.name} resolved at source ({item.fingerprint})")
        return _result(latest)

    if latest is not None and latest.closed_at is not None and _within(latest.closed_at, item):
        # A flapping alert right after we closed: recorded on the closed incident, no second run.
        _attach(session, latest, item)
        _note(session, latest.id, item, f"repeat after close: alert {item.alert.name} ({item.fingerprint})")
        return _result(latest, suppressed=True)

    row = IncidentORM(
        id=new_id("inc"),
        runbook=item.runbook,
        service=item.service,
        severity=Severity(item.severity).value,
        mode=Mode(item.mode).value,
        status=IncidentStatus.OPEN.value,
        outcome=None,
        incident_key=key,
        flow_run_id=None,
        alert=item.alert.model_dump(mode="json"),
        report=None,
        opened_at=item.received_at,
        closed_at=None,
        alert_count=0,
        last_alert_at=None,
    )
    session.add(row)
    session.flush()  # the partial unique index speaks here: IntegrityError if another open won the race
    _attach(session, row, item)
    _note(session, row.id, item, f"alert {item.alert.name} opened the incident ({item.source})")
    return _result(row, created=True)


def record_unrouted(
    session: Session,
    *,
    source: str,
    name: str,
    payload: dict[str, Any],
    received_at: datetime,
    reason: str,
    fingerprint: str | None,
    status: AlertStatus,
) -> int:
    row = AlertORM(
        incident_id=None,
        source=source,
        name=name,
        fingerprint=fingerprint,
        status=AlertStatus(status).value,
        routed=False,
        runbook=None,
        service=None,
        severity=None,
        reason=reason,
        received_at=received_at,
        payload=payload,
    )
    session.add(row)
    session.flush()
    return row.id


def _open_for_service(session: Session, item: AlertIn) -> IncidentORM | None:
    """The open alert-opened incident of the item's (runbook, service), whatever its key; locked."""
    return session.scalars(
        _incidents()
        .where(
            IncidentORM.runbook == item.runbook,
            IncidentORM.service == item.service,
            IncidentORM.status == IncidentStatus.OPEN.value,
            IncidentORM.incident_key.is_not(None),
        )
        .with_for_update()
        .limit(1)
    ).first()


def _key_attached(session: Session, incident_id: str, key: str) -> bool:
    """Whether an alert of dedupe key ``key`` is attached to the incident."""
    found = session.scalars(
        select(AlertORM.id).where(AlertORM.incident_id == incident_id, AlertORM.incident_key == key).limit(1)
    ).first()
    return found is not None


def _seen(session: Session, incident_id: str, item: AlertIn) -> bool:
    """Whether an alert of the item's source and fingerprint is already attached to the incident."""
    same_fingerprint = (
        AlertORM.fingerprint.is_(None) if item.fingerprint is None else AlertORM.fingerprint == item.fingerprint
    )
    found = session.scalars(
        select(AlertORM.id)
        .where(AlertORM.incident_id == incident_id, AlertORM.source == item.source, same_fingerprint)
        .limit(1)
    ).first()
    return found is not None


def _within(closed_at: datetime, item: AlertIn) -> bool:
    return (item.received_at - closed_at).total_seconds() < item.reopen_cooldown_s


def _attach(session: Session, incident: IncidentORM, item: AlertIn) -> None:
    _insert_alert(session, incident.id, item)
    # The row is locked (FOR UPDATE, or SQLite's single writer), so a read-modify-write is safe here.
    incident.alert_count = (incident.alert_count or 0) + 1
    if incident.last_alert_at is None or item.received_at > incident.last_alert_at:
        incident.last_alert_at = item.received_at


def _insert_alert(session: Session, incident_id: str | None, item: AlertIn) -> None:
    session.add(
        AlertORM(
            incident_id=incident_id,
            incident_key=item.incident_key,
            source=item.source,
            name=item.alert.name,
            fingerprint=item.fingerprint,
            status=item.status.value,
            routed=True,
            runbook=item.runbook,
            service=item.service,
            severity=Severity(item.severity).value,
            reason=None,
            received_at=item.received_at,
            payload=item.payload,
        )
    )


def _note(session: Session, incident_id: str, item: AlertIn, event: str, *, detail: str | None = None) -> None:
    session.add(
        TimelineORM(
            incident_id=incident_id,
            at=item.received_at,
            phase=Phase.IDENTIFY.value,
            event=event,
            detail=detail if detail is not None else f"source {item.source}",
        )
    )


def _result(row: IncidentORM, *, created: bool = False, suppressed: bool = False) -> IngestResult:
    status = IncidentStatus(row.status)
    return IngestResult(
        incident_id=row.id,
        created=created,
        suppressed=suppressed,
        alert_count=row.alert_count,
        needs_run=status is IncidentStatus.OPEN and row.flow_run_id is None,
        incident_status=status,
    )


class AlertMethods:
    """The alert-intake half of ``Store``; relies on the store's ``_write``/``_read`` transactions."""

    def _write(self) -> AbstractContextManager[Session]:
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Session]:
        raise NotImplementedError

    def ingest_alert(
        self,
        *,
        incident_key: str,
        runbook: str,
        service: str,
        severity: Severity,
        alert: Alert,
        source: str,
        fingerprint: str | None,
        status: AlertStatus | str,
        received_at: datetime,
        payload: dict[str, Any],
        mode: Mode,
        reopen_cooldown_s: float = 600.0,
    ) -> IngestResult:
        """Store one routed alert and attach it to its incident, in one transaction.

        * an open incident has ``incident_key``: attach (a resolution also goes on its timeline);
        * else, firing, an alert-opened incident of the same (runbook, service) is open under another key
          (another source or group, the same outage): attach to it, and the first alert of each source and
          fingerprint goes on its timeline ("alert attached from <source>"); a resolution attaches there
          only if alerts of its key did;
        * else, firing: attach to the incident of this key (opened under it, or holding its alerts) closed
          less than ``reopen_cooldown_s`` ago (``suppressed``, no new run), or open a new incident
          (``created``) in ``mode``;
        * else, resolved: keep the row with the most recent incident of this key, or unattached.

        Racing calls for one key, or for one (runbook, service) under two keys (threads or processes), open
        exactly one incident: the database's partial unique indexes reject the second insert and the loser
        retries as an attach.
        """
        item = AlertIn(
            incident_key=incident_key,
            runbook=runbook,
            service=service,
            severity=Severity(severity),
            alert=alert,
            source=source,
            fingerprint=fingerprint,
            status=AlertStatus(status),
            received_at=require_aware(received_at, "received_at"),
            payload=payload,
            mode=Mode(mode),
            reopen_cooldown_s=reopen_cooldown_s,
        )
        for attempt in range(1, _INGEST_ATTEMPTS + 1):
            try:
                with self._write() as session:
                    return ingest(session, item)
            except IntegrityError:
                if attempt == _INGEST_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def record_unrouted(
        self,
        source: str,
        name: str,
        payload: dict[str, Any],
        received_at: datetime,
        reason: str,
        *,
        fingerprint: str | None = None,
        status: AlertStatus | str = AlertStatus.FIRING,
    ) -> int:
        """Keep an alert no route claimed (with why), so it is visible instead of dropped; returns its id."""
        with self._write() as session:
            return record_unrouted(
                session,
                source=source,
                name=name,
                payload=payload,
                received_at=require_aware(received_at, "received_at"),
                reason=reason,
                fingerprint=fingerprint,
                status=AlertStatus(status),
            )

    def incident_alerts(self, incident_id: str) -> list[AlertRow]:
        """Alerts attached to an incident, in arrival order."""
        return self._alert_rows(AlertORM.incident_id == incident_id, newest_first=False)

    def unrouted_alerts(self, limit: int = 50) -> list[AlertRow]:
        """The ``limit`` most recent alerts that matched no route, newest first."""
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        return self._alert_rows(AlertORM.routed.is_(False), newest_first=True, limit=limit)

    def _alert_rows(
        self, condition: ColumnElement[bool], *, newest_first: bool, limit: int | None = None
    ) -> list[AlertRow]:
        if newest_first:
            order = (AlertORM.received_at.desc(), AlertORM.id.desc())
        else:
            order = (AlertORM.received_at.asc(), AlertORM.id.asc())
        query = select(AlertORM).where(condition).order_by(*order)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as session:
            return [AlertRow.from_orm_row(row) for row in session.scalars(query)]
