"""Read models the store returns: immutable, typed views of rows, independent of the ORM session.

They exist so callers never hold ORM objects (which would tie them to a session and a thread) and so
stored strings come back as the domain's enums and models.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from remediation.models import (
    ActionRecord,
    ActionState,
    Alert,
    Mode,
    Outcome,
    Phase,
    Plan,
    PlanEnvelope,
    Risk,
    Severity,
    Verdict,
)
from remediation.store.tables import ActionORM, AlertORM, IncidentORM


class IncidentStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class IncidentSummary(BaseModel):
    """An incident row without its (possibly large) report; use ``Store.get_report`` for that."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    runbook: str
    service: str
    severity: Severity
    mode: Mode
    status: IncidentStatus
    outcome: Outcome | None
    incident_key: str | None
    flow_run_id: str | None
    alert: Alert
    opened_at: datetime
    closed_at: datetime | None
    alert_count: int = 0
    last_alert_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.status is IncidentStatus.OPEN

    @classmethod
    def from_orm_row(cls, row: IncidentORM) -> IncidentSummary:
        return cls(
            id=row.id,
            runbook=row.runbook,
            service=row.service,
            severity=Severity(row.severity),
            mode=Mode(row.mode),
            status=IncidentStatus(row.status),
            outcome=Outcome(row.outcome) if row.outcome is not None else None,
            incident_key=row.incident_key,
            flow_run_id=row.flow_run_id,
            alert=Alert.model_validate(row.alert),
            opened_at=row.opened_at,
            closed_at=row.closed_at,
            alert_count=row.alert_count or 0,
            last_alert_at=row.last_alert_at,
        )


class ActionRow(BaseModel):
    """One ledger row. ``plan`` is parsed back into the concrete plan model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    incident_id: str
    phase: Phase
    kind: str
    risk: Risk
    service: str
    target: str
    plan: Plan
    decision: Verdict
    reasons: tuple[str, ...]
    state: ActionState
    error: str | None
    read_back: str | None
    approver: str | None
    started_at: datetime
    completed_at: datetime | None

    @classmethod
    def from_orm_row(cls, row: ActionORM) -> ActionRow:
        return cls(
            id=row.id,
            incident_id=row.incident_id,
            phase=Phase(row.phase),
            kind=row.kind,
            risk=Risk(row.risk),
            service=row.service,
            target=row.target,
            plan=PlanEnvelope.model_validate({"plan": row.plan}).plan,
            decision=Verdict(row.decision),
            reasons=tuple(row.reasons),
            state=ActionState(row.state),
            error=row.error,
            read_back=row.read_back,
            approver=row.approver,
            started_at=row.started_at,
            completed_at=row.completed_at,
        )

    def as_record(self) -> ActionRecord:
        """The run's view of this row (its approval is on the timeline and in the approvals table, not here)."""
        return ActionRecord(id=self.id, phase=self.phase, plan=self.plan, decision=self.decision,
                            reasons=self.reasons, state=self.state, error=self.error, read_back=self.read_back,
                            started_at=self.started_at, completed_at=self.completed_at)


class AlertStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class AlertRow(BaseModel):
    """One alert notification as intake stored it (routed or not)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: int
    incident_id: str | None
    source: str
    name: str
    fingerprint: str | None
    status: AlertStatus
    routed: bool
    runbook: str | None
    service: str | None
    severity: Severity | None
    reason: str | None
    received_at: datetime
    payload: dict[str, Any]

    @classmethod
    def from_orm_row(cls, row: AlertORM) -> AlertRow:
        return cls(
            id=row.id,
            incident_id=row.incident_id,
            source=row.source,
            name=row.name,
            fingerprint=row.fingerprint,
            status=AlertStatus(row.status),
            routed=row.routed,
            runbook=row.runbook,
            service=row.service,
            severity=Severity(row.severity) if row.severity is not None else None,
            reason=row.reason,
            received_at=row.received_at,
            payload=row.payload,
        )


class IngestResult(BaseModel):
    """What ``Store.ingest_alert`` did with one alert.

    ``needs_run`` is true while the incident is open and no flow run is recorded for it, so whoever gets
    this result (first delivery or any retry) knows to (re)start the run; starting is idempotent on the
    incident id. ``suppressed``: a firing alert arrived within the cooldown after its incident closed and
    was attached to that closed incident instead of opening a new one.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    incident_id: str | None
    created: bool = False
    suppressed: bool = False
    alert_count: int = 0
    needs_run: bool = False
    incident_status: IncidentStatus | None = None
