"""The store's figures for /metrics (remediation.store.figures), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest

from remediation.models import (
    ActionState,
    Approval,
    ApprovalAnswer,
    EnableMaintenance,
    Outcome,
    Phase,
    Rollback,
    ScaleUp,
)
from remediation.store import PendingStep, Store
from tests.store.store_factories import T0, action, full_report, open_incident


def close(store: Store, incident_id: str, outcome: Outcome, after: timedelta) -> None:
    report = full_report(incident_id).model_copy(update={"outcome": outcome, "finished_at": T0 + after})
    store.close_incident(incident_id, report)


def pending(action_id: str, incident_id: str, requested: timedelta, deadline: timedelta) -> PendingStep:
    return PendingStep(
        action_id=action_id, incident_id=incident_id, flow_run_id=None, step="contain:1", runbook="elevated_5xx",
        service="web", severity="sev2", phase="contain", summary="scale up", risk="reversible", why="5xx",
        evidence=(), undo="scale down", statement=None, needed=1, requested_at=T0 + requested,
        deadline=T0 + deadline,
    )


def test_an_empty_store_has_no_groups_and_nothing_waiting(store: Store) -> None:
    figures = store.figures()
    assert figures.open_incidents.groups == {} and figures.open_incidents.total == 0
    assert figures.runs.total == figures.actions.total == figures.approval_answers.total == 0
    assert figures.approvals_waiting == 0 and figures.oldest_waiting_since is None
    assert figures.approvals_overdue_since is None and figures.recent_closed == ()


def test_open_incidents_are_counted_by_runbook_and_service_and_closed_ones_are_runs(store: Store) -> None:
    open_incident(store, service="web", opened_at=T0)
    open_incident(store, service="web", opened_at=T0)
    open_incident(store, service="api", opened_at=T0)
    for outcome in (Outcome.ESCALATED, Outcome.ESCALATED, Outcome.RECOVERED):
        close(store, open_incident(store, service="db", opened_at=T0), outcome, timedelta(minutes=5))

    figures = store.figures()

    assert figures.open_incidents.groups == {("elevated_5xx", "web"): 2, ("elevated_5xx", "api"): 1}
    assert figures.open_incidents.rest == 0
    assert figures.runs.groups == {("elevated_5xx", "escalated"): 2, ("elevated_5xx", "recovered"): 1}


def test_groups_beyond_the_bound_are_kept_as_a_remainder_largest_groups_first(store: Store) -> None:
    for service, n in (("a", 3), ("b", 2), ("c", 1), ("d", 1)):
        for _ in range(n):
            open_incident(store, service=service, opened_at=T0)

    figures = store.figures(max_groups=2)

    assert figures.open_incidents.groups == {("elevated_5xx", "a"): 3, ("elevated_5xx", "b"): 2}
    assert figures.open_incidents.total == 7 and figures.open_incidents.rest == 2


def test_ledger_rows_are_counted_by_kind_decision_and_state(store: Store) -> None:
    incident = open_incident(store, opened_at=T0)
    scale = ScaleUp(service="web", from_replicas=2, to_replicas=4, ttl_s=900)
    store.record_action(incident, action(scale, state=ActionState.APPLIED, completed_at=T0))
    store.record_action(incident, action(scale, state=ActionState.FAILED, completed_at=T0))
    store.record_intent(incident, action(scale))
    rollback = Rollback(service="web", from_release="r2", to_release="r1")
    approved = Approval(answer=ApprovalAnswer.APPROVED, approver="alice")
    store.record_action(incident, action(rollback, state=ActionState.APPLIED, completed_at=T0, approval=approved))

    assert store.figures().actions.groups == {
        ("scale_up", "allow", "applied"): 1,
        ("scale_up", "allow", "failed"): 1,
        ("scale_up", "allow", "intent"): 1,
        ("rollback", "needs_approval", "applied"): 1,
    }


def test_approvals_inbox_size_longest_wait_and_earliest_deadline_and_answers(store: Store) -> None:
    incident = open_incident(store, opened_at=T0)
    store.open_pending(pending("act-1", incident, requested=timedelta(minutes=2), deadline=timedelta(minutes=12)))
    store.open_pending(pending("act-2", incident, requested=timedelta(minutes=1), deadline=timedelta(minutes=31)))
    for answer in (ApprovalAnswer.TIMEOUT, ApprovalAnswer.TIMEOUT, ApprovalAnswer.APPROVED):
        store.record_approval(incident, Approval(answer=answer, approver="bob", at=T0))

    figures = store.figures()

    assert figures.approvals_waiting == 2
    assert figures.oldest_waiting_since == T0 + timedelta(minutes=1)
    assert figures.approvals_overdue_since == T0 + timedelta(minutes=12)
    assert figures.approval_answers.groups == {("timeout",): 2, ("approved",): 1}


def test_time_to_contain_is_from_opening_to_the_first_applied_containment(store: Store) -> None:
    incident = open_incident(store, opened_at=T0)
    maintenance = EnableMaintenance(service="web", path_prefixes=("/",), reason="shed load")
    scale = ScaleUp(service="web", from_replicas=2, to_replicas=4, ttl_s=900)
    # Not containment in effect: a failed one, a planned one, and an applied step of another phase, all earlier.
    store.record_action(incident, action(scale, state=ActionState.FAILED, phase=Phase.CONTAIN,
                                         completed_at=T0 + timedelta(seconds=10)))
    store.record_action(incident, action(scale, state=ActionState.PLANNED, phase=Phase.CONTAIN,
                                         completed_at=T0 + timedelta(seconds=20)))
    store.record_action(incident, action(scale, state=ActionState.APPLIED, phase=Phase.REMEDIATE,
                                         completed_at=T0 + timedelta(seconds=30)))
    store.record_action(incident, action(maintenance, state=ActionState.APPLIED, phase=Phase.CONTAIN,
                                         completed_at=T0 + timedelta(seconds=150)))
    store.record_action(incident, action(scale, state=ActionState.APPLIED, phase=Phase.CONTAIN,
                                         completed_at=T0 + timedelta(seconds=90)))
    close(store, incident, Outcome.RECOVERED, timedelta(minutes=20))

    [closed] = store.figures().recent_closed

    assert closed.time_to_contain_s == 90.0
    assert closed.time_to_recover_s == 1200.0


@pytest.mark.parametrize("outcome", [Outcome.ESCALATED, Outcome.DENIED, Outcome.STOOD_DOWN, Outcome.DRY_RUN])
def test_only_recovered_incidents_have_a_time_to_recover(store: Store, outcome: Outcome) -> None:
    close(store, open_incident(store, opened_at=T0), outcome, timedelta(minutes=20))

    [closed] = store.figures().recent_closed

    assert closed.time_to_recover_s is None and closed.time_to_contain_s is None


def test_durations_come_from_the_most_recently_closed_incidents_only(store: Store) -> None:
    for minutes in (10, 30, 20):
        close(store, open_incident(store, opened_at=T0), Outcome.RECOVERED, timedelta(minutes=minutes))

    recent = store.figures(recent=2).recent_closed

    assert [c.time_to_recover_s for c in recent] == [1800.0, 1200.0]
