"""Builders for domain objects used across the store tests (one of every plan kind, a full report)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from remediation.models import (
    ActionRecord,
    ActionState,
    Alert,
    Approval,
    ApprovalAnswer,
    DisableMaintenance,
    EnableMaintenance,
    Evidence,
    Finding,
    FindingStatus,
    IncidentReport,
    Mode,
    Outcome,
    Phase,
    Plan,
    Rollback,
    Sample,
    ScaleUp,
    SetFeatureFlag,
    Severity,
    TimelineEntry,
    Verdict,
    Verification,
    new_id,
)
from remediation.store import Store

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
IST = timezone(timedelta(hours=5, minutes=30))


def alert(service: str = "web") -> Alert:
    return Alert(
        name="Elevated5xx",
        service=service,
        severity=Severity.SEV2,
        source="alertmanager",
        fingerprint="abc123",
        labels={"env": "prod", "team": "platform"},
        annotations={"summary": "5xx > 2%"},
        starts_at=T0 - timedelta(minutes=3),
    )


def all_plans(service: str = "web") -> list[Plan]:
    return [
        EnableMaintenance(service=service, path_prefixes=("/checkout", "/cart"), reason="shed load"),
        DisableMaintenance(service=service, path_prefixes=("/checkout",)),
        Rollback(service=service, from_release="r42", to_release="r41", from_version="1.4.2", to_version="1.4.1"),
        SetFeatureFlag(service=service, flag="new_search", enabled=False, previous=True),
        ScaleUp(service=service, from_replicas=2, to_replicas=4, ttl_s=900),
    ]


def action(
    plan: Plan,
    *,
    state: ActionState = ActionState.PLANNED,
    started_at: datetime = T0,
    completed_at: datetime | None = None,
    approval: Approval | None = None,
    phase: Phase = Phase.REMEDIATE,
) -> ActionRecord:
    return ActionRecord(
        phase=phase,
        plan=plan,
        decision=Verdict.NEEDS_APPROVAL if approval else Verdict.ALLOW,
        reasons=("error rate above threshold", "within hourly cap"),
        approval=approval,
        state=state,
        started_at=started_at,
        completed_at=completed_at,
    )


def open_incident(
    store: Store,
    *,
    service: str = "web",
    incident_id: str | None = None,
    opened_at: datetime | None = None,
    incident_key: str | None = None,
) -> str:
    incident_id = incident_id or new_id("inc")
    store.open_incident(
        incident_id=incident_id,
        runbook="elevated_5xx",
        service=service,
        severity=Severity.SEV2,
        mode=Mode.AUTO,
        alert=alert(service),
        incident_key=incident_key,
        opened_at=opened_at,
    )
    return incident_id


def full_report(incident_id: str, service: str = "web") -> IncidentReport:
    """A report exercising every nested model, every plan kind and non-UTC timestamps."""
    approval = Approval(answer=ApprovalAnswer.APPROVED, approver="alice", reason="go", at=T0.astimezone(IST))
    actions = [
        action(
            p,
            state=ActionState.APPLIED if i % 2 == 0 else ActionState.PLANNED,
            started_at=T0 + timedelta(seconds=i),
            completed_at=T0 + timedelta(seconds=i, milliseconds=250),
            approval=approval if p.kind == "rollback" else None,
        )
        for i, p in enumerate(all_plans(service))
    ]
    return IncidentReport(
        incident_id=incident_id,
        runbook="elevated_5xx",
        service=service,
        mode=Mode.AUTO,
        severity=Severity.SEV2,
        outcome=Outcome.RECOVERED,
        alert=alert(service),
        flow_run_id="6f1c2c8e-0000-4000-8000-000000000001",
        findings=[
            Finding(check="error_rate", status=FindingStatus.BREACH, observed=0.053, threshold=0.02, unit="ratio"),
            Finding(check="latency_p99", status=FindingStatus.UNKNOWN, observed=None, detail="no data"),
            Finding(check="release", status=FindingStatus.OK, observed="r42", evidence={"deployed": ["r42"]}),
        ],
        actions=actions,
        evidence=[
            Evidence(source="sentry", summary="2 new issues", items=({"id": "S-1", "count": 12},)),
            Evidence(source="logs", summary="unavailable", available=False),
        ],
        verification=Verification(
            check="error_rate",
            healthy=True,
            samples=tuple(Sample(at=T0 + timedelta(minutes=m), value=0.001, healthy=True) for m in range(3)),
            detail="3 consecutive healthy samples",
        ),
        timeline=[
            TimelineEntry(at=T0, phase=Phase.IDENTIFY, event="alert", detail="Elevated5xx"),
            TimelineEntry(at=T0 + timedelta(minutes=5), phase=Phase.CLOSE, event="closed"),
        ],
        escalation=None,
        postmortem="# Postmortem\n\nRolled back r42 → r41.",
        started_at=T0,
        finished_at=T0 + timedelta(minutes=6),
    )
