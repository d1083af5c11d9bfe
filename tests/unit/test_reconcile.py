"""Incidents whose run died are closed as escalated, naming the half-done actions; live runs are left alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from remediation.models import (
    ActionRecord,
    ActionState,
    Alert,
    EnableMaintenance,
    Mode,
    Outcome,
    Phase,
    Rollback,
    Severity,
    Verdict,
)
from remediation.reconcile import RunState, StateReader, reconcile
from remediation.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(f"sqlite:///{tmp_path / 'r.db'}")
    s.migrate()
    return s


def open_incident(store: Store, incident_id: str, flow_run_id: str | None, service: str = "web") -> None:
    store.open_incident(incident_id=incident_id, runbook="elevated-error-rate", service=service,
                        severity=Severity.SEV2, mode=Mode.AUTO, alert=Alert(name="HighErrorRate", service=service))
    if flow_run_id:
        store.set_flow_run(incident_id, flow_run_id)


def states(mapping: dict[str, RunState | None]) -> StateReader:
    return lambda ids: {i: mapping.get(i) for i in ids}


def test_a_crashed_run_s_incident_is_closed_escalated_with_its_half_done_action(store: Store) -> None:
    open_incident(store, "inc-1", "run-1")
    maintenance = ActionRecord(phase=Phase.CONTAIN, decision=Verdict.ALLOW,
                               plan=EnableMaintenance(service="web", path_prefixes=("/api/cart",)))
    store.record_intent("inc-1", maintenance.model_copy(update={"state": ActionState.INTENT}))
    found = reconcile(store, states({"run-1": RunState(type="CRASHED", name="Crashed",
                                                       message="No heartbeat for 90s")}))
    assert [(r.incident_id, r.run_state, r.closed) for r in found] == [("inc-1", "Crashed", True)]
    assert "enable_maintenance /api/cart" in found[0].dangling[0] and "disable_maintenance" in found[0].dangling[0]
    incident = store.get_incident("inc-1")
    assert incident is not None and not incident.is_open and incident.outcome is Outcome.ESCALATED
    report = store.get_report("inc-1")
    assert report is not None and report.escalation is not None
    assert "ended Crashed (No heartbeat for 90s)" in report.escalation and "half-done" in report.escalation
    assert [a.state for a in report.actions] == [ActionState.INTENT]
    assert store.timeline("inc-1")[-1].event == "reconciled: closed as escalated"


def test_live_runs_are_left_to_close_their_own_incidents(store: Store) -> None:
    alive = ("RUNNING", "PAUSED", "SCHEDULED", "PENDING")
    for i in range(len(alive)):
        open_incident(store, f"inc-{i}", f"run-{i}")
    found = reconcile(store, states({f"run-{i}": RunState(type=t) for i, t in enumerate(alive)}))
    assert found == []
    assert all(store.get_incident(f"inc-{i}").is_open for i in range(4))  # type: ignore[union-attr]


def test_a_deleted_run_and_a_cancelled_run_are_reconciled_but_not_a_run_never_started(store: Store) -> None:
    open_incident(store, "inc-gone", "run-gone")
    open_incident(store, "inc-cancelled", "run-c")
    open_incident(store, "inc-unstarted", None)
    found = reconcile(store, states({"run-c": RunState(type="CANCELLED", name="Cancelled")}))
    assert sorted((r.incident_id, r.run_state) for r in found) == [("inc-cancelled", "Cancelled"),
                                                                   ("inc-gone", "missing")]
    assert store.get_incident("inc-unstarted").is_open  # type: ignore[union-attr]


def test_dry_run_reports_without_closing(store: Store) -> None:
    open_incident(store, "inc-1", "run-1")
    found = reconcile(store, states({"run-1": RunState(type="FAILED")}), dry_run=True)
    assert [(r.incident_id, r.closed) for r in found] == [("inc-1", False)]
    assert store.get_incident("inc-1").is_open  # type: ignore[union-attr]


def test_after_reconciling_the_service_is_free_for_the_next_remediation(store: Store) -> None:
    open_incident(store, "inc-old", "run-old")
    store.record_action("inc-old", ActionRecord(phase=Phase.REMEDIATE, decision=Verdict.DENY, plan=Rollback(
        service="web", from_release="b", to_release="a")))
    assert len(store.active_incidents("web")) == 1
    reconcile(store, states({"run-old": RunState(type="CRASHED")}))
    assert store.active_incidents("web") == []


def test_an_already_closed_incident_is_never_touched(store: Store) -> None:
    open_incident(store, "inc-1", "run-1")
    reconcile(store, states({"run-1": RunState(type="COMPLETED")}))
    assert reconcile(store, states({"run-1": RunState(type="COMPLETED")})) == []
