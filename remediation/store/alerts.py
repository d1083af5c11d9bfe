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

This is the per-alert decision, the whole of it. ``remediation.store.deliveries`` writes a delivery in one
transaction and takes a shortcut only where the outcome cannot differ (the key's incident is open: a
set-based attach); everything else comes here, one alert at a time. The functions take an open session and
never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session, defer

from remediation.models import Alert, Mode, Phase, Severity, new_id
from remediation.store.rows import AlertStatus, IncidentStatus, IngestResult
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


@dataclass(frozen=True)
class UnroutedIn:
    """An alert no route claimed: kept (with why) so it is visible instead of dropped."""

    source: str
    name: str
    payload: dict[str, Any]
    received_at: datetime
    reason: str
    fingerprint: str | None
    status: AlertStatus


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
            session.add(TimelineORM(**resolved_note(open_row.id, item)))
        return _result(open_row)

    sibling = _open_for_service(session, item)
    if sibling is not None and (item.status is AlertStatus.FIRING or _key_attached(session, sibling.id, key)):
        # Another source (or group) already opened this runbook's incident on this service: the same
        # outage, so attach; a resolution goes here only when alerts of its key did.
        first_of_its_kind = not _seen(session, sibling.id, item)
        _attach(session, sibling, item)
        if item.status is AlertStatus.RESOLVED:
            session.add(TimelineORM(**resolved_note(sibling.id, item)))
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
        session.add(TimelineORM(**resolved_note(latest.id, item)))
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


def record_unrouted(session: Session, item: UnroutedIn) -> int:
    row = AlertORM(**unrouted_values(item))
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


def alert_values(incident_id: str | None, item: AlertIn) -> dict[str, Any]:
    """The ``alerts`` row of a routed alert (the ORM path here and the set-based path write the same row)."""
    return {
        "incident_id": incident_id,
        "incident_key": item.incident_key,
        "source": item.source,
        "name": item.alert.name,
        "fingerprint": item.fingerprint,
        "status": item.status.value,
        "routed": True,
        "runbook": item.runbook,
        "service": item.service,
        "severity": Severity(item.severity).value,
        "reason": None,
        "received_at": item.received_at,
        "payload": item.payload,
    }


def unrouted_values(item: UnroutedIn) -> dict[str, Any]:
    return {
        "incident_id": None,
        "incident_key": None,
        "source": item.source,
        "name": item.name,
        "fingerprint": item.fingerprint,
        "status": item.status.value,
        "routed": False,
        "runbook": None,
        "service": None,
        "severity": None,
        "reason": item.reason,
        "received_at": item.received_at,
        "payload": item.payload,
    }


def note_values(incident_id: str, item: AlertIn, event: str, *, detail: str | None = None) -> dict[str, Any]:
    return {
        "incident_id": incident_id,
        "at": item.received_at,
        "phase": Phase.IDENTIFY.value,
        "event": event,
        "detail": detail if detail is not None else f"source {item.source}",
    }


def resolved_note(incident_id: str, item: AlertIn) -> dict[str, Any]:
    return note_values(incident_id, item, f"alert {item.alert.name} resolved at source ({item.fingerprint})")


def _insert_alert(session: Session, incident_id: str | None, item: AlertIn) -> None:
    session.add(AlertORM(**alert_values(incident_id, item)))


def _note(session: Session, incident_id: str, item: AlertIn, event: str, *, detail: str | None = None) -> None:
    session.add(TimelineORM(**note_values(incident_id, item, event, detail=detail)))


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
