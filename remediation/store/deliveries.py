"""Writing a delivery: all of its alerts in one transaction, set-based where the outcome cannot differ.

An alert storm is many alerts of a few incidents that are already open. For each dedupe key of a delivery,
one ``UPDATE ... RETURNING`` bumps the open incident's counters (taking its row lock, as the per-alert
path's ``FOR UPDATE`` did) and returns what that path would have read; the alerts and their timeline notes
then go in as one multi-row ``INSERT`` each. That is the first branch of ``alerts.ingest`` applied to n
alerts at once, and it is the same decision: while the key's incident is open, and locked by our UPDATE so
nobody closes it under us, every alert of the key attaches to it whatever else the delivery holds. When
the key has no open incident, its alerts go through ``alerts.ingest`` one at a time until one of them opens
(or finds) an incident, and the rest try the set-based attach again.

Keys are taken in sorted order, so two deliveries naming the same keys lock their incidents in the same
order instead of deadlocking. That reordering only matters between keys of one (runbook, service), whose
alerts may attach across keys; a key is (runbook, service, group) and every source delivers one group at a
time, so one delivery never holds two such keys. Within a key the delivery's order is kept.

A lost race (``IntegrityError`` from a partial unique index), a deadlock or a serialization failure rolls
the whole delivery back and it is written again: a delivery is stored entirely or not at all.

On PostgreSQL the storm's case (every key of the delivery has an open incident) is first tried without the ORM
session (:class:`DirectDeliveries`): the same UPDATE and INSERT statements, compiled once by SQLAlchemy, sent
with ``exec_driver_sql`` on a plain connection. The session, its transaction object and the statement
compilation per execution were about half of the store's CPU per delivery in a storm profile, and a four-alert
multi-row INSERT has more parameters than psycopg caches the conversion of (50). When a key has no open
incident that attempt is rolled back (it wrote nothing else) and the delivery goes the way described above.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Connection, Integer, Table, Update, bindparam, case, insert, or_, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement

from remediation.models import Alert, Mode, Severity
from remediation.store import alerts
from remediation.store.alerts import AlertIn, UnroutedIn
from remediation.store.coltypes import UTCDateTime, require_aware
from remediation.store.rows import AlertRow, AlertStatus, IncidentStatus, IngestResult
from remediation.store.tables import AlertORM, IncidentORM, TimelineORM

#: How often a delivery is written after losing the open-incident race (or a deadlock). One retry suffices in
#: theory (the winner's incident is visible by then); the rest covers a close and a reopen between attempts.
_ATTEMPTS = 5
#: PostgreSQL's "deadlock detected" and "serialization failure": the transaction was rolled back, retry it.
_RETRIED_SQLSTATES = frozenset({"40P01", "40001"})

_INCIDENTS = cast(Table, IncidentORM.__table__)
_ALERTS = cast(Table, AlertORM.__table__)
_TIMELINE = cast(Table, TimelineORM.__table__)

Item = AlertIn | UnroutedIn


class _Rows:
    """Rows of the delivery waiting to be inserted, one multi-row INSERT per table."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []
        self.notes: list[dict[str, Any]] = []

    def write(self, session: Session) -> None:
        # RETURNING (the ids are not needed) is what makes SQLAlchemy send an executemany as one multi-row
        # INSERT ("insertmanyvalues") from a cached statement; ``.values(rows)`` would be compiled afresh for
        # every delivery, and a plain executemany is one INSERT per row on the server.
        if self.alerts:
            session.execute(insert(_ALERTS).returning(_ALERTS.c.id), self.alerts)
            self.alerts = []
        if self.notes:
            session.execute(insert(_TIMELINE).returning(_TIMELINE.c.id), self.notes)
            self.notes = []


def _split(items: Sequence[Item]) -> tuple[list[IngestResult | None], dict[str, list[int]], _Rows]:
    """A delivery taken apart: the results so far (an unrouted item's, whose row is already in ``rows``), and the
    positions of the routed items by dedupe key."""
    results: list[IngestResult | None] = [None] * len(items)
    by_key: dict[str, list[int]] = {}
    rows = _Rows()
    for index, item in enumerate(items):
        if isinstance(item, UnroutedIn):
            rows.alerts.append(alerts.unrouted_values(item))
            results[index] = IngestResult(incident_id=None)
        else:
            by_key.setdefault(item.incident_key, []).append(index)
    return results, by_key, rows


def ingest_delivery(session: Session, items: Sequence[Item]) -> list[IngestResult]:
    """Store every item of one delivery in ``session``'s transaction; one result per item, in order."""
    results, by_key, rows = _split(items)
    for key in sorted(by_key):
        pending = by_key[key]
        while pending:
            batch = [cast(AlertIn, items[i]) for i in pending]
            attached = _attach_to_open(session, key, batch, rows)
            if attached is not None:
                for index, result in zip(pending, attached, strict=True):
                    results[index] = result
                break
            first = pending.pop(0)
            # The per-alert path reads alerts and incidents: it must see everything written so far, and not
            # ORM copies of incidents our UPDATEs have bumped since they were loaded.
            rows.write(session)
            session.expire_all()
            results[first] = alerts.ingest(session, batch[0])
            session.flush()
    rows.write(session)
    return [r for r in results if r is not None]


def _bump_open() -> Update:
    c = _INCIDENTS.c
    newest = bindparam("newest", type_=UTCDateTime())
    return (
        update(_INCIDENTS)
        .where(c.incident_key == bindparam("key"), c.status == IncidentStatus.OPEN.value)
        .values(
            alert_count=c.alert_count + bindparam("added", type_=Integer()),
            last_alert_at=case((or_(c.last_alert_at.is_(None), c.last_alert_at < newest), newest),
                               else_=c.last_alert_at),
        )
        .returning(c.id, c.alert_count, c.flow_run_id)
    )


#: Built once: building it (and its cache key) for every delivery showed up as ~10% of the receiver's CPU in a
#: storm profile.
_BUMP_OPEN = _bump_open()


def _attach_to_open(session: Session, key: str, batch: list[AlertIn], rows: _Rows) -> list[IngestResult] | None:
    """Attach all of ``batch`` (alerts of ``key``) to the key's open incident; None if it has none."""
    found = session.execute(_BUMP_OPEN, _bump_values(key, batch)).first()
    if found is None:
        return None
    incident_id, count, flow_run_id = found
    return _attached(incident_id, count, flow_run_id, batch, rows)


def _bump_values(key: str, batch: list[AlertIn]) -> dict[str, Any]:
    return {"key": key, "added": len(batch), "newest": max(item.received_at for item in batch)}


def _attached(
    incident_id: str, count: int, flow_run_id: str | None, batch: list[AlertIn], rows: _Rows
) -> list[IngestResult]:
    """The rows and results of ``batch`` attached to an open incident whose count is now ``count``."""
    results = []
    for offset, item in enumerate(batch, start=count - len(batch) + 1):
        rows.alerts.append(alerts.alert_values(incident_id, item))
        if item.status is AlertStatus.RESOLVED:
            rows.notes.append(alerts.resolved_note(incident_id, item))
        # Each alert reports the count as it stood after it, as if the alerts had been written one by one.
        results.append(IngestResult(incident_id=incident_id, alert_count=offset, needs_run=flow_run_id is None,
                                    incident_status=IncidentStatus.OPEN))
    return results


class _NotAllOpen(Exception):
    """A key of the delivery has no open incident: the direct attempt is rolled back."""


class _Compiled:
    """A statement compiled once for a dialect, executed with ``exec_driver_sql`` with SQLAlchemy's own bind
    processing (the values are converted exactly as a compiled execution converts them)."""

    def __init__(self, statement: ClauseElement, dialect: Dialect, column_keys: list[str] | None = None) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect, column_keys=column_keys))
        self.sql = str(compiled)
        self._defaults = dict(compiled.params)  # the literals' values (``status = 'open'``); None for the rest
        self._processors = [
            (name, process)
            for name in self._defaults
            if (process := compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)) is not None
        ]

    def params(self, values: dict[str, Any]) -> dict[str, Any]:
        params = {**self._defaults, **values}
        for name, process in self._processors:
            params[name] = process(params[name])
        return params


class DirectDeliveries:
    """The set-based attach of a whole delivery on a plain connection (PostgreSQL), without the ORM session.

    :meth:`write` is ``ingest_delivery`` for a delivery whose every key has an open incident: the same UPDATE per
    key in sorted order, the same rows (``alerts.alert_values``, ``unrouted_values``, ``resolved_note``) in the
    same order, the same results. For any other delivery it raises :class:`_NotAllOpen` and the caller's
    transaction, which then holds only row locks and counter bumps, is rolled back.
    """

    def __init__(self, dialect: Dialect) -> None:
        self._bump = _Compiled(_BUMP_OPEN, dialect)
        self._insert_alert = _Compiled(insert(_ALERTS).inline(), dialect, list(_ALERT_COLUMNS))
        self._insert_note = _Compiled(insert(_TIMELINE).inline(), dialect, list(_NOTE_COLUMNS))

    def write(self, conn: Connection, items: Sequence[Item]) -> list[IngestResult]:
        results, by_key, rows = _split(items)
        for key in sorted(by_key):
            batch = [cast(AlertIn, items[i]) for i in by_key[key]]
            found = conn.exec_driver_sql(self._bump.sql, self._bump.params(_bump_values(key, batch))).first()
            if found is None:
                raise _NotAllOpen(key)
            incident_id, count, flow_run_id = found
            for index, result in zip(by_key[key], _attached(incident_id, count, flow_run_id, batch, rows),
                                     strict=True):
                results[index] = result
        # One INSERT per row, sent together (psycopg pipelines an executemany): a statement whose parameter
        # conversion psycopg caches, and prepares on the server after a few runs, whatever the delivery's size.
        if rows.alerts:
            conn.exec_driver_sql(self._insert_alert.sql, [self._insert_alert.params(r) for r in rows.alerts])
        if rows.notes:
            conn.exec_driver_sql(self._insert_note.sql, [self._insert_note.params(r) for r in rows.notes])
        return [r for r in results if r is not None]


_ALERT_COLUMNS = ("incident_id", "incident_key", "source", "name", "fingerprint", "status", "routed", "runbook",
                  "service", "severity", "reason", "received_at", "payload")
_NOTE_COLUMNS = ("incident_id", "at", "phase", "event", "detail")


def _retryable(exc: OperationalError) -> bool:
    return getattr(exc.orig, "sqlstate", None) in _RETRIED_SQLSTATES


class AlertMethods:
    """The alert-intake half of ``Store``; relies on the store's ``_write``/``_read`` transactions."""

    def _write(self) -> AbstractContextManager[Session]:
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Session]:
        raise NotImplementedError

    def _write_connection(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def _direct_deliveries(self) -> DirectDeliveries | None:
        raise NotImplementedError

    def ingest_alerts(self, items: Sequence[Item]) -> list[IngestResult]:
        """Store one delivery's alerts, routed (:class:`AlertIn`) and unrouted (:class:`UnroutedIn`), in one
        transaction; one result per item, in order (an unrouted item's has no incident).

        Each routed alert gets exactly the decision :meth:`ingest_alert` documents, as if the delivery's alerts
        had been ingested one after the other; none is stored unless all are.
        """
        if not items:
            return []
        for item in items:
            require_aware(item.received_at, "received_at")
        direct = self._direct_deliveries()
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                if direct is not None:
                    try:
                        with self._write_connection() as conn:
                            return direct.write(conn, items)
                    except _NotAllOpen:
                        pass  # rolled back; the general path decides alert by alert where needed
                with self._write() as session:
                    return ingest_delivery(session, items)
            except IntegrityError:
                if attempt == _ATTEMPTS:
                    raise
            except OperationalError as exc:
                if attempt == _ATTEMPTS or not _retryable(exc):
                    raise
        raise AssertionError("unreachable")

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
        [result] = self.ingest_alerts([item])
        return result

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
        item = UnroutedIn(source=source, name=name, payload=payload,
                          received_at=require_aware(received_at, "received_at"), reason=reason,
                          fingerprint=fingerprint, status=AlertStatus(status))
        with self._write() as session:
            return alerts.record_unrouted(session, item)

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
