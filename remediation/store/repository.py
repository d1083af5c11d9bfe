"""``Store``: the only way the rest of the project reads or writes incidents and the action ledger.

Every public method is one short transaction, committed before it returns. That is the contract the
runbooks rely on: once ``record_intent`` returns, the intent row is durable and visible to any other
process, so a crash during the mutation that follows leaves a ``dangling_actions()`` row to reconcile.

Thread safety: the engine (created lazily on first use, never at import) and its pool are shared; each
call uses its own session, and ORM objects never leave this module (callers get frozen read models).
The store reads no environment and no settings: whoever constructs it passes the URL.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Connection, CursorResult, Engine, Select, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer, sessionmaker

from remediation import policy
from remediation.models import (
    UNSETTLED_STATES,
    ActionRecord,
    ActionState,
    Alert,
    Approval,
    ApprovalAnswer,
    IncidentReport,
    Mode,
    Phase,
    Severity,
    TimelineEntry,
    undoes,
    utcnow,
)
from remediation.store import migrate as _migrate
from remediation.store.approvals import ApprovalMethods
from remediation.store.budgets import BudgetMethods
from remediation.store.coltypes import require_aware
from remediation.store.deliveries import AlertMethods, DirectDeliveries
from remediation.store.engine import make_engine, normalize_url, writer
from remediation.store.errors import ActionConflict, ActionNotFound, IncidentExists, IncidentNotFound
from remediation.store.figures import FigureMethods
from remediation.store.flow_runs import FlowRunMethods
from remediation.store.logs import LogMethods
from remediation.store.notify_state import NotifyStateMethods
from remediation.store.rows import ActionRow, IncidentStatus, IncidentSummary
from remediation.store.tables import ActionORM, ApprovalORM, IncidentORM, TimelineORM

#: States that count as "a mutation happened" for rate caps. An undone action was applied first, so it
#: counts: otherwise an apply/undo loop would never hit the cap. An unknown one may have been applied: a cap that
#: ignored it would let a run whose answers keep getting lost act without limit.
_MUTATED_STATES = (ActionState.APPLIED.value, ActionState.UNDONE.value, ActionState.UNKNOWN.value)


class Store(AlertMethods, ApprovalMethods, BudgetMethods, FigureMethods, FlowRunMethods, LogMethods,
            NotifyStateMethods):
    """Incident, ledger, approval and timeline persistence on SQLite (default) or PostgreSQL.

    The alert-intake methods (``ingest_alerts``, ``ingest_alert``, ``record_unrouted``, ``incident_alerts``,
    ``unrouted_alerts``) come from :class:`~remediation.store.deliveries.AlertMethods`.
    The shared request budgets (``take_request``, ``block_requests``, ``request_budget``) come from
    :class:`~remediation.store.budgets.BudgetMethods`; the drained app log lines (``add_log_lines``, ``log_lines``,
    ``newest_received_at``, ``prune_log_lines``) from :class:`~remediation.store.logs.LogMethods`; the approvals
    inbox and spent proofs (``open_pending``, ``pending_steps``, ``claim_proof``, ...) from
    :class:`~remediation.store.approvals.ApprovalMethods`; the metrics' counts (``figures``) from
    :class:`~remediation.store.figures.FigureMethods`.
    """

    def __init__(self, url: str) -> None:
        self._url = url
        self._lock = threading.Lock()
        self._engine: Engine | None = None
        self._reader: sessionmaker[Session] | None = None
        self._writer: sessionmaker[Session] | None = None
        self._direct: DirectDeliveries | None = None

    def __repr__(self) -> str:
        return f"Store({normalize_url(self._url).render_as_string(hide_password=True)!r})"

    # -- lifecycle -------------------------------------------------------------------------------------

    def _factories(self) -> tuple[Engine, sessionmaker[Session], sessionmaker[Session]]:
        with self._lock:
            if self._engine is None or self._reader is None or self._writer is None:
                engine = make_engine(self._url)
                self._engine = engine
                self._reader = sessionmaker(engine, expire_on_commit=False)
                self._writer = sessionmaker(writer(engine), expire_on_commit=False)
                # A delivery to open incidents skips the ORM session on PostgreSQL (remediation.store.deliveries).
                self._direct = DirectDeliveries(engine.dialect) if engine.dialect.name == "postgresql" else None
            return self._engine, self._reader, self._writer

    def migrate(self) -> None:
        """Upgrade the schema to head (a no-op when current); creates a SQLite file's parent directory."""
        _migrate.ensure_sqlite_parent(self._url)
        engine, _, _ = self._factories()
        _migrate.upgrade(engine)

    def dispose(self) -> None:
        """Close pooled connections. The store stays usable: the next call makes a new engine."""
        with self._lock:
            engine, self._engine, self._reader, self._writer = self._engine, None, None, None
            self._direct = None
        if engine is not None:
            engine.dispose()

    def ping(self) -> None:
        """Round-trip to the database; raises the driver's error when it is unreachable."""
        with self._read() as session:
            session.execute(text("SELECT 1"))

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """One write transaction; on SQLite it holds the write lock from BEGIN (see ``engine.py``)."""
        _, _, factory = self._factories()
        with factory.begin() as session:
            yield session

    @contextmanager
    def _write_connection(self) -> Iterator[Connection]:
        """One write transaction on a plain connection (no ORM session): committed on exit, rolled back on error."""
        engine, _, _ = self._factories()
        with writer(engine).begin() as conn:
            yield conn

    def _direct_deliveries(self) -> DirectDeliveries | None:
        self._factories()
        return self._direct

    @contextmanager
    def _read(self) -> Iterator[Session]:
        _, factory, _ = self._factories()
        with factory() as session:
            yield session

    @staticmethod
    def _require_incident(session: Session, incident_id: str) -> None:
        if session.scalar(select(IncidentORM.id).where(IncidentORM.id == incident_id)) is None:
            raise IncidentNotFound(incident_id)

    # -- incidents -------------------------------------------------------------------------------------

    def open_incident(
        self,
        *,
        incident_id: str,
        runbook: str,
        service: str,
        severity: Severity,
        mode: Mode,
        alert: Alert,
        incident_key: str | None = None,
        flow_run_id: str | None = None,
        opened_at: datetime | None = None,
    ) -> None:
        """Insert an open incident. Raises ``IncidentExists`` if the id is taken."""
        row = IncidentORM(
            id=incident_id,
            runbook=runbook,
            service=service,
            severity=Severity(severity).value,
            mode=Mode(mode).value,
            status=IncidentStatus.OPEN.value,
            outcome=None,
            incident_key=incident_key,
            flow_run_id=flow_run_id,
            alert=alert.model_dump(mode="json"),
            report=None,
            opened_at=require_aware(opened_at, "opened_at") if opened_at else utcnow(),
            closed_at=None,
        )
        try:
            with self._write() as session:
                if session.get(IncidentORM, incident_id, options=[defer(IncidentORM.report)]) is not None:
                    raise IncidentExists(incident_id)
                session.add(row)
        except IntegrityError as exc:  # lost a race with a concurrent open of the same id
            if self.get_incident(incident_id) is not None:
                raise IncidentExists(incident_id) from exc
            raise

    def set_flow_run(self, incident_id: str, flow_run_id: str) -> None:
        with self._write() as session:
            statement = update(IncidentORM).where(IncidentORM.id == incident_id).values(flow_run_id=flow_run_id)
            result = cast("CursorResult[Any]", session.execute(statement))
            if result.rowcount == 0:
                raise IncidentNotFound(incident_id)

    def adopt_incident(self, incident_id: str, flow_run_id: str, previous: str | None) -> bool:
        """Hand the incident to ``flow_run_id`` only if its run is still ``previous`` (compare-and-set): of two runs
        adopting the same incident at once, one wins and the other reads the winner back."""
        owner = IncidentORM.flow_run_id.is_(None) if previous is None else IncidentORM.flow_run_id == previous
        with self._write() as session:
            statement = update(IncidentORM).where(IncidentORM.id == incident_id, owner).values(flow_run_id=flow_run_id)
            return cast("CursorResult[Any]", session.execute(statement)).rowcount == 1

    def close_incident(self, incident_id: str, report: IncidentReport) -> None:
        """Mark closed with the report's outcome and keep the whole report as JSON. Re-closing overwrites."""
        if report.incident_id != incident_id:
            raise ValueError(f"report is for {report.incident_id!r}, not {incident_id!r}")
        with self._write() as session:
            row = session.get(IncidentORM, incident_id, with_for_update=True)
            if row is None:
                raise IncidentNotFound(incident_id)
            row.status = IncidentStatus.CLOSED.value
            row.outcome = report.outcome.value
            row.report = report.model_dump(mode="json")
            row.closed_at = report.finished_at or utcnow()
            if report.flow_run_id:
                row.flow_run_id = report.flow_run_id

    def get_report(self, incident_id: str) -> IncidentReport | None:
        """The report stored at close; None if the incident is unknown or still open."""
        with self._read() as session:
            data = session.scalar(select(IncidentORM.report).where(IncidentORM.id == incident_id))
        return IncidentReport.model_validate(data) if data is not None else None

    def get_incident(self, incident_id: str) -> IncidentSummary | None:
        with self._read() as session:
            row = session.scalar(self._summaries().where(IncidentORM.id == incident_id))
            return IncidentSummary.from_orm_row(row) if row is not None else None

    def incident_for_flow_run(self, flow_run_id: str) -> IncidentSummary | None:
        """The incident a Prefect flow run belongs to (e.g. to record a refused approval for it)."""
        query = self._summaries().where(IncidentORM.flow_run_id == flow_run_id).order_by(IncidentORM.opened_at)
        with self._read() as session:
            row = session.scalars(query.limit(1)).first()
            return IncidentSummary.from_orm_row(row) if row is not None else None

    def list_incidents(self, limit: int = 50) -> list[IncidentSummary]:
        """The ``limit`` most recently opened incidents, newest first."""
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        query = self._summaries().order_by(IncidentORM.opened_at.desc(), IncidentORM.id.desc()).limit(limit)
        with self._read() as session:
            return [IncidentSummary.from_orm_row(row) for row in session.scalars(query)]

    def active_incidents(self, service: str, exclude: str | None = None) -> list[IncidentSummary]:
        """Open incidents for ``service``, oldest first (the first one is the one that owns the service)."""
        query = self._summaries().where(IncidentORM.service == service, IncidentORM.status == IncidentStatus.OPEN.value)
        if exclude is not None:
            query = query.where(IncidentORM.id != exclude)
        query = query.order_by(IncidentORM.opened_at, IncidentORM.id)
        with self._read() as session:
            return [IncidentSummary.from_orm_row(row) for row in session.scalars(query)]

    @staticmethod
    def _summaries() -> Select[IncidentORM]:
        # The report can be large and summaries never need it; raiseload makes an accidental use loud.
        return select(IncidentORM).options(defer(IncidentORM.report, raiseload=True))

    # -- the action ledger -----------------------------------------------------------------------------

    def record_intent(self, incident_id: str, action: ActionRecord) -> None:
        """Write (or move) the action to state ``intent`` and commit, before the caller mutates anything."""
        self._upsert_action(incident_id, action, ActionState.INTENT)

    def record_action(self, incident_id: str, action: ActionRecord) -> None:
        """Insert or update the ledger row to the action's current state, approver from its approval."""
        self._upsert_action(incident_id, action, action.state)

    def _upsert_action(self, incident_id: str, action: ActionRecord, state: ActionState) -> None:
        values: dict[str, Any] = {
            "incident_id": incident_id,
            "phase": Phase(action.phase).value,
            "kind": action.kind,
            "risk": action.risk.value,
            "service": action.plan.service,
            "target": action.plan.target,
            "plan": action.plan.model_dump(mode="json"),
            "decision": action.decision.value,
            "reasons": list(action.reasons),
            "state": state.value,
            "error": action.error,
            "read_back": action.read_back,
            "approver": (action.approval.approver or None) if action.approval else None,
            "started_at": action.started_at,
            "completed_at": None if state is ActionState.INTENT else action.completed_at,
        }
        with self._write() as session:
            self._require_incident(session, incident_id)
            row = session.get(ActionORM, action.id, with_for_update=True)
            if row is None:
                # One run writes an incident's ledger (incident.refuse_duplicate), so the next number is free.
                seq = session.scalar(select(func.coalesce(func.max(ActionORM.seq), 0) + 1)
                                     .where(ActionORM.incident_id == incident_id))
                session.add(ActionORM(id=action.id, seq=seq, **values))
                return
            if row.incident_id != incident_id:
                raise ActionConflict(f"action {action.id} belongs to incident {row.incident_id}")
            for key, value in values.items():
                setattr(row, key, value)

    def complete_action(
        self,
        action_id: str,
        *,
        state: ActionState,
        error: str | None = None,
        completed_at: datetime | None = None,
        read_back: str | None = None,
    ) -> None:
        """Move a ledger row out of ``intent`` (applied, failed, unknown, undone...); ``error`` and ``read_back``
        overwrite (an ``unknown`` row is completed again once the platform has been read back)."""
        state = ActionState(state)
        if state is ActionState.INTENT:
            raise ValueError("complete_action cannot move an action into 'intent'; use record_intent")
        finished = require_aware(completed_at, "completed_at") if completed_at else utcnow()
        with self._write() as session:
            row = session.get(ActionORM, action_id, with_for_update=True)
            if row is None:
                raise ActionNotFound(action_id)
            row.state = state.value
            row.error = error
            row.read_back = read_back
            row.completed_at = finished

    def actions(self, incident_id: str) -> list[ActionRow]:
        return self._action_rows(ActionORM.incident_id == incident_id)

    def dangling_actions(self) -> list[ActionRow]:
        """Rows whose outcome nobody knows: still ``intent`` (the process died, or is still working, between intent
        and outcome) or ``unknown`` (the answer was lost and reading the platform back could not tell)."""
        return self._action_rows(ActionORM.state.in_(sorted(s.value for s in UNSETTLED_STATES)))

    def _action_rows(self, condition: ColumnElement[bool]) -> list[ActionRow]:
        query = select(ActionORM).where(condition).order_by(ActionORM.started_at, ActionORM.seq, ActionORM.id)
        with self._read() as session:
            return [ActionRow.from_orm_row(row) for row in session.scalars(query)]

    def actions_applied_since(self, service: str, since: datetime) -> int:
        """How many mutations of ``service`` (the plan's service) completed at or after ``since``.

        Counts ``applied`` and ``undone`` rows (an undone action was applied first). A row without
        ``completed_at`` is dated by ``started_at``.
        """
        require_aware(since, "since")
        when = func.coalesce(ActionORM.completed_at, ActionORM.started_at)
        query = (
            select(func.count())
            .select_from(ActionORM)
            .where(ActionORM.service == service, ActionORM.state.in_(_MUTATED_STATES), when >= since)
        )
        with self._read() as session:
            return int(session.scalar(query) or 0)

    def changes_applied_since(self, service: str, since: datetime) -> int:
        """The operations the hourly cap counts: like :meth:`actions_applied_since`, without the steps that put back
        a change of their own incident (turning maintenance off again, resuming paused jobs) or an instance (a
        restore): the hourly cap limits the changes we start, and must never keep a run from undoing its own
        containment. All drains and restarts of one incident's rolling restart are one operation
        (``policy.ROLLING_RESTART_KINDS``); :meth:`instances_restarted_since` counts its instances."""
        require_aware(since, "since")
        when = func.coalesce(ActionORM.completed_at, ActionORM.started_at)
        recent = self._action_rows((ActionORM.service == service) & ActionORM.state.in_(_MUTATED_STATES)
                                   & (when >= since))
        earlier: dict[str, list[ActionRow]] = {}
        for incident_id in {row.incident_id for row in recent}:
            earlier[incident_id] = [r for r in self.actions(incident_id) if r.state.value in _MUTATED_STATES]
        operations: set[str] = set()
        for row in recent:
            if row.plan.kind in policy.UNCOUNTED_KINDS or any(
                    other.id != row.id and other.started_at <= row.started_at and undoes(row.plan, other.plan)
                    for other in earlier[row.incident_id]):
                continue
            rolling = row.plan.kind in policy.ROLLING_RESTART_KINDS
            operations.add(f"rolling-restart:{row.incident_id}" if rolling else row.id)
        return len(operations)

    def instances_restarted_since(self, service: str, since: datetime) -> int:
        """Restarts of ``service``'s instances applied at or after ``since`` (by any incident), for
        ``REMEDIATE_MAX_RESTART_INSTANCES_PER_HOUR``."""
        require_aware(since, "since")
        when = func.coalesce(ActionORM.completed_at, ActionORM.started_at)
        query = (
            select(func.count())
            .select_from(ActionORM)
            .where(ActionORM.service == service, ActionORM.kind == "restart_instance",
                   ActionORM.state.in_(_MUTATED_STATES), when >= since)
        )
        with self._read() as session:
            return int(session.scalar(query) or 0)

    # -- approvals and timeline ------------------------------------------------------------------------

    def record_approval(self, incident_id: str, approval: Approval, action_id: str | None = None) -> None:
        """Append an approval answer; ``action_id`` may name an action whose ledger row comes later."""
        with self._write() as session:
            self._require_incident(session, incident_id)
            session.add(
                ApprovalORM(
                    incident_id=incident_id,
                    action_id=action_id,
                    answer=ApprovalAnswer(approval.answer).value,
                    approver=approval.approver,
                    reason=approval.reason,
                    at=approval.at,
                    answer_id=approval.answer_id or None,
                    via=approval.via or None,
                )
            )

    def approvals(self, incident_id: str) -> list[Approval]:
        query = (
            select(ApprovalORM).where(ApprovalORM.incident_id == incident_id).order_by(ApprovalORM.at, ApprovalORM.id)
        )
        with self._read() as session:
            return [_approval(r) for r in session.scalars(query)]

    def approval_answered(self, answer_id: str) -> Approval | None:
        """The run's verdict on one answer, found by the id its answerer chose (None until the run judged it)."""
        query = select(ApprovalORM).where(ApprovalORM.answer_id == answer_id).order_by(ApprovalORM.id.desc())
        with self._read() as session:
            row = session.scalars(query).first()
            return _approval(row) if row is not None else None

    def add_timeline(self, incident_id: str, entry: TimelineEntry) -> None:
        with self._write() as session:
            self._require_incident(session, incident_id)
            session.add(
                TimelineORM(
                    incident_id=incident_id,
                    at=entry.at,
                    phase=Phase(entry.phase).value,
                    event=entry.event,
                    detail=entry.detail,
                )
            )

    def timeline(self, incident_id: str) -> list[TimelineEntry]:
        """Entries ordered by time, then by insertion order for entries with the same timestamp."""
        query = (
            select(TimelineORM).where(TimelineORM.incident_id == incident_id).order_by(TimelineORM.at, TimelineORM.id)
        )
        with self._read() as session:
            return [
                TimelineEntry(at=r.at, phase=Phase(r.phase), event=r.event, detail=r.detail)
                for r in session.scalars(query)
            ]


def _approval(row: ApprovalORM) -> Approval:
    return Approval(answer=ApprovalAnswer(row.answer), approver=row.approver, reason=row.reason, at=row.at,
                    answer_id=row.answer_id or "", via=row.via or "")
