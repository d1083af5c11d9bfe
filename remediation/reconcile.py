"""Close incidents whose run died without closing them, and name the actions it left half-done.

A run closes its own incident in every outcome it controls. It cannot when its process is SIGKILLed or OOM-killed
(the zombie automation later marks the run ``Crashed``), when someone cancels or deletes it, or when the engine
fails outside the runbook's code. The incident then stays open, and policy's one-remediation-per-service rule
would refuse every later change to that service. ``reconcile`` finds those incidents (their flow run is final or
gone), closes each as **escalated**, and writes on the timeline which ledger rows are still ``intent``: their
mutation may or may not have happened, and only a person can tell (the plan's undo is listed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from remediation.models import (
    ActionRecord,
    ActionState,
    IncidentReport,
    Outcome,
    Phase,
    TimelineEntry,
    utcnow,
)
from remediation.store import Store
from remediation.store.rows import ActionRow, IncidentSummary

FINAL_STATES = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})


class RunState(BaseModel):
    model_config = ConfigDict(frozen=True)

    type: str  # Prefect StateType value: COMPLETED, FAILED, CRASHED, CANCELLED, RUNNING, PAUSED, ...
    name: str = ""
    message: str = ""


class Reconciled(BaseModel):
    model_config = ConfigDict(frozen=True)

    incident_id: str
    service: str
    runbook: str
    flow_run_id: str | None
    run_state: str  # "missing" when the run no longer exists
    closed: bool
    dangling: tuple[str, ...] = ()  # summaries of ledger rows left in ``intent``


StateReader = Callable[[list[str]], dict[str, RunState | None]]


def prefect_run_states(flow_run_ids: list[str]) -> dict[str, RunState | None]:
    """Each run's current state from the Prefect API; None for a run that does not exist (deleted)."""
    from uuid import UUID

    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    found: dict[str, RunState | None] = {run_id: None for run_id in flow_run_ids}
    if not flow_run_ids:
        return found
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(i) for i in flow_run_ids])),
            limit=len(flow_run_ids))
    for run in runs:
        if run.state is not None:
            found[str(run.id)] = RunState(type=run.state.type.value, name=run.state.name or "",
                                          message=run.state.message or "")
    return found


def reconcile(store: Store, read_states: StateReader = prefect_run_states, *, dry_run: bool = False,
              now: Callable[[], datetime] = utcnow, limit: int = 1000) -> list[Reconciled]:
    """Close every open incident whose flow run is final or missing; return what was found (and done)."""
    candidates = [i for i in store.list_incidents(limit) if i.is_open and i.flow_run_id]
    states = read_states([i.flow_run_id for i in candidates if i.flow_run_id]) if candidates else {}
    results: list[Reconciled] = []
    for incident in candidates:
        assert incident.flow_run_id is not None
        state = states.get(incident.flow_run_id)
        if state is not None and state.type not in FINAL_STATES:
            continue  # the run is alive (running, paused, scheduled): it will close the incident itself
        rows = store.actions(incident.id)
        dangling = tuple(_describe(row) for row in rows if row.state is ActionState.INTENT)
        described = "missing" if state is None else (state.name or state.type)
        if not dry_run:
            _close(store, incident, rows, state, dangling, now())
        results.append(Reconciled(incident_id=incident.id, service=incident.service, runbook=incident.runbook,
                                  flow_run_id=incident.flow_run_id, run_state=described, closed=not dry_run,
                                  dangling=dangling))
    return results


def _describe(row: ActionRow) -> str:
    undo = row.plan.undo()
    return (f"{row.plan.summary()} (action {row.id}, started {row.started_at:%Y-%m-%d %H:%M:%S}Z; "
            f"undo: {undo.summary() if undo else 'none'})")


def _close(store: Store, incident: IncidentSummary, rows: Iterable[ActionRow], state: RunState | None,
           dangling: tuple[str, ...], at: datetime) -> None:
    what = ("its flow run no longer exists" if state is None
            else f"its flow run ended {state.name or state.type}" + (f" ({state.message})" if state.message else ""))
    escalation = f"the run stopped without closing the incident: {what}"
    if dangling:
        escalation += ("; check by hand whether these half-done actions took effect: " + "; ".join(dangling))
    entry = TimelineEntry(at=at, phase=Phase.CLOSE, event="reconciled: closed as escalated", detail=escalation)
    store.add_timeline(incident.id, entry)
    report = IncidentReport(
        incident_id=incident.id, runbook=incident.runbook, service=incident.service, mode=incident.mode,
        severity=incident.severity, outcome=Outcome.ESCALATED, alert=incident.alert,
        flow_run_id=incident.flow_run_id, actions=[_record(row) for row in rows],
        timeline=store.timeline(incident.id), escalation=escalation, started_at=incident.opened_at,
        finished_at=at,
    )
    store.close_incident(incident.id, report)


def _record(row: ActionRow) -> ActionRecord:
    data: dict[str, Any] = {"id": row.id, "phase": row.phase, "plan": row.plan, "decision": row.decision,
                            "reasons": row.reasons, "state": row.state, "error": row.error,
                            "started_at": row.started_at, "completed_at": row.completed_at}
    return ActionRecord.model_validate(data)
