"""The reconciler takes over a dead run's incident: continued at recover by a new run when the fix was applied
(recorded on the timeline, the incident now owned by the new run), otherwise closed escalated naming what is still in
effect with its undo."""

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
from remediation.orchestration.continuation import CONTINUE_PARAMETER, continuation_key, continuation_parameters
from remediation.reconcile import RunState, RunVerdict, reconcile
from remediation.store import Store
from remediation.store.rows import IncidentSummary
from remediation.takeover import CONTINUED_EVENT, MAX_CONTINUATIONS

DEAD = {"run-1": RunState(type="CRASHED", name="Crashed", message="lease lapsed")}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(f"sqlite:///{tmp_path / 'r.db'}")
    s.migrate()
    s.open_incident(incident_id="inc-1", runbook="elevated-error-rate", service="web", severity=Severity.SEV2,
                    mode=Mode.AUTO, alert=Alert(name="HighErrorRate", service="web"))
    s.set_flow_run("inc-1", "run-1")
    return s


def applied(store: Store, phase: Phase, plan: EnableMaintenance | Rollback) -> ActionRecord:
    record = ActionRecord(phase=phase, plan=plan, decision=Verdict.ALLOW, state=ActionState.APPLIED)
    store.record_action("inc-1", record)
    return record


def contain_and_fix(store: Store) -> None:
    applied(store, Phase.CONTAIN, EnableMaintenance(service="web", path_prefixes=("/api/cart",)))
    applied(store, Phase.REMEDIATE, Rollback(service="web", from_release="r2", to_release="r1"))


class Continuer:
    def __init__(self, fail: bool = False) -> None:
        self.calls: list[tuple[str, str]] = []
        self.fail = fail

    def __call__(self, incident: IncidentSummary, dead_run_id: str) -> str:
        self.calls.append((incident.id, dead_run_id))
        if self.fail:
            raise RuntimeError("deployment not found")
        return f"cont-{len(self.calls)}"


def test_a_dead_run_whose_fix_was_applied_is_continued_by_a_new_run_and_its_incident_stays_open(store: Store) -> None:
    contain_and_fix(store)
    continuer = Continuer()
    (found,) = reconcile(store, lambda ids: {i: DEAD.get(i) for i in ids}, continue_run=continuer)
    assert continuer.calls == [("inc-1", "run-1")]
    assert found.verdict is RunVerdict.CONTINUED and found.continued_by == "cont-1" and not found.closed
    incident = store.get_incident("inc-1")
    assert incident is not None and incident.is_open and incident.flow_run_id == "cont-1"
    entry = store.timeline("inc-1")[-1]
    assert entry.event == CONTINUED_EVENT and "run-1" in entry.detail and "cont-1" in entry.detail
    assert "not run again" in entry.detail


def test_a_dry_run_reports_the_continuation_without_starting_it(store: Store) -> None:
    contain_and_fix(store)
    continuer = Continuer()
    (found,) = reconcile(store, lambda ids: {i: DEAD.get(i) for i in ids}, continue_run=continuer, dry_run=True)
    assert found.verdict is RunVerdict.CONTINUED and continuer.calls == [] and not found.closed
    assert store.get_incident("inc-1").flow_run_id == "run-1"  # type: ignore[union-attr]


def test_a_run_that_had_only_contained_is_escalated_naming_the_containment_and_its_undo(store: Store) -> None:
    applied(store, Phase.CONTAIN, EnableMaintenance(service="web", path_prefixes=("/api/cart",)))
    continuer = Continuer()
    (found,) = reconcile(store, lambda ids: {i: DEAD.get(i) for i in ids}, continue_run=continuer)
    assert continuer.calls == [] and found.verdict is RunVerdict.DEAD and found.closed
    report = store.get_report("inc-1")
    assert report is not None and report.outcome is Outcome.ESCALATED and report.escalation is not None
    assert "only contained" in report.escalation
    assert "still in effect, undo when safe: enable_maintenance" in report.escalation
    assert "undo: disable_maintenance" in report.escalation


def test_a_continuation_that_cannot_be_started_closes_the_incident_saying_why(store: Store) -> None:
    contain_and_fix(store)
    (found,) = reconcile(store, lambda ids: {i: DEAD.get(i) for i in ids}, continue_run=Continuer(fail=True))
    assert found.verdict is RunVerdict.DEAD and found.closed
    report = store.get_report("inc-1")
    assert report is not None and report.escalation is not None
    assert "could not be started (RuntimeError)" in report.escalation and "rollback" in report.escalation


def test_without_a_continuer_a_fixed_incident_is_closed_with_its_changes_named(store: Store) -> None:
    contain_and_fix(store)
    (found,) = reconcile(store, lambda ids: {i: DEAD.get(i) for i in ids})
    assert found.closed and "no continuation can be started here" in found.takeover
    assert len(found.in_effect) == 2


def test_an_incident_whose_continuations_keep_dying_is_finally_escalated(store: Store) -> None:
    contain_and_fix(store)
    continuer = Continuer()
    for n in range(1, MAX_CONTINUATIONS + 1):
        dead_run = store.get_incident("inc-1").flow_run_id  # type: ignore[union-attr]
        (found,) = reconcile(store, lambda ids: {i: RunState(type="CRASHED") for i in ids}, continue_run=continuer)
        assert found.verdict is RunVerdict.CONTINUED and found.continued_by == f"cont-{n}", dead_run
    (last,) = reconcile(store, lambda ids: {i: RunState(type="CRASHED") for i in ids}, continue_run=continuer)
    assert last.verdict is RunVerdict.DEAD and last.closed and "died again" in last.takeover
    assert len(continuer.calls) == MAX_CONTINUATIONS


def test_the_continuation_keeps_the_dead_run_s_parameters_adopts_the_incident_and_starts_at_recover(
        store: Store) -> None:
    incident = store.get_incident("inc-1")
    assert incident is not None
    parameters = continuation_parameters(incident, {"threshold_pct": 2.5, "incident_id": None, "mode": "approve"})
    assert parameters["threshold_pct"] == 2.5 and parameters["incident_id"] == "inc-1"
    assert parameters[CONTINUE_PARAMETER] is True and parameters["mode"] == "auto"
    assert continuation_parameters(incident, None)["service"] == "web"
    assert continuation_key("inc-1", "run-1") != continuation_key("inc-1", "run-2")
