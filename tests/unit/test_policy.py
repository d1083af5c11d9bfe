"""policy.evaluate is pure: every rule, table-tested."""

from __future__ import annotations

import pytest

from remediation.models import (
    DisableMaintenance,
    DrainInstance,
    EnableMaintenance,
    Mode,
    Plan,
    RestartInstance,
    RestoreInstance,
    Rollback,
    ScaleUp,
    SetFeatureFlag,
    Verdict,
)
from remediation.policy import PolicyContext, continues_operation, evaluate

MAINT = EnableMaintenance(service="svc", path_prefixes=("/api/checkout",))
SITE_WIDE = EnableMaintenance(service="svc", path_prefixes=("/",))
ROLLBACK = Rollback(service="svc", from_release="b", to_release="a")
FLAG = SetFeatureFlag(service="svc", flag="f", enabled=False, previous=True)
SCALE_OK = ScaleUp(service="svc", from_replicas=2, to_replicas=4)
SCALE_BIG = ScaleUp(service="svc", from_replicas=2, to_replicas=10)
DRAIN = DrainInstance(service="svc", instance_id="i-02")
RESTART = RestartInstance(service="svc", instance_id="i-02", drained=True)
RESTORE = RestoreInstance(service="svc", instance_id="i-02", timeout_s=300)  # not the drain's undo to the letter
FULL = {"actions_last_hour": 10, "max_actions_per_hour": 10}


def ctx(**overrides: object) -> PolicyContext:
    return PolicyContext(**{"mode": Mode.AUTO, **overrides})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("plan", "context", "verdict", "reason_part"),
    [
        (MAINT, ctx(), Verdict.ALLOW, "auto mode"),
        (MAINT, ctx(mode=Mode.APPROVE), Verdict.NEEDS_APPROVAL, "approve mode"),
        (MAINT, ctx(mode=Mode.DRY_RUN), Verdict.DENY, "dry run"),
        (ROLLBACK, ctx(), Verdict.NEEDS_APPROVAL, "destructive"),
        (ROLLBACK, ctx(mode=Mode.APPROVE), Verdict.NEEDS_APPROVAL, "destructive"),
        (ROLLBACK, ctx(preapproved_kinds=frozenset({"rollback"})), Verdict.ALLOW, "pre-approved"),
        (ROLLBACK, ctx(preapproved_kinds=frozenset({"scale_up"})), Verdict.NEEDS_APPROVAL, "destructive"),
        (ROLLBACK, ctx(evidence_confirmed=False), Verdict.DENY, "without confirmed evidence"),
        (ROLLBACK, ctx(mode=Mode.DRY_RUN, preapproved_kinds=frozenset({"rollback"})), Verdict.DENY, "dry run"),
        (SITE_WIDE, ctx(), Verdict.NEEDS_APPROVAL, "destructive"),
        (FLAG, ctx(), Verdict.ALLOW, "auto mode"),
        (MAINT, ctx(kill_switch=True), Verdict.DENY, "kill switch"),
        (ROLLBACK, ctx(kill_switch=True, preapproved_kinds=frozenset({"rollback"})), Verdict.DENY, "kill switch"),
        (MAINT, ctx(other_active_remediations=1), Verdict.DENY, "one active remediation per service"),
        (MAINT, ctx(actions_last_hour=10, max_actions_per_hour=10), Verdict.DENY, "reached the cap"),
        (MAINT, ctx(actions_last_hour=9, max_actions_per_hour=10), Verdict.ALLOW, "auto mode"),
        # putting back the incident's own change is never stopped by the cap (maintenance must not stay on)
        (DisableMaintenance(service="s", path_prefixes=("/x",)),
         ctx(actions_last_hour=10, max_actions_per_hour=10, restores_own_change=True), Verdict.ALLOW, "auto mode"),
        (DisableMaintenance(service="s", path_prefixes=("/x",)),
         ctx(actions_last_hour=10, max_actions_per_hour=10), Verdict.DENY, "reached the cap"),
        (EnableMaintenance(service="s", path_prefixes=tuple(f"/p{i}" for i in range(6))), ctx(), Verdict.DENY,
         "exceeds the cap of 5"),
        (SCALE_OK, ctx(), Verdict.ALLOW, "auto mode"),
        (SCALE_BIG, ctx(), Verdict.DENY, "scale factor 5.0 exceeds"),
        (ScaleUp(service="s", from_replicas=10, to_replicas=25), ctx(), Verdict.DENY, "25 replicas exceeds"),
        (DisableMaintenance(service="s", path_prefixes=("/x",)), ctx(), Verdict.ALLOW, "auto mode"),
        # a rolling restart is one operation: its first drain is counted, its next steps were counted with it
        (DRAIN, ctx(**FULL), Verdict.DENY, "reached the cap of 10"),
        (DRAIN, ctx(**FULL, continues_counted_operation=True), Verdict.ALLOW, "auto mode"),
        (RESTART, ctx(**FULL, continues_counted_operation=True, preapproved_kinds=frozenset({"restart_instance"})),
         Verdict.ALLOW, "pre-approved"),
        # instances have their own cap, which a counted operation does not lift
        (RESTART, ctx(restart_instances_last_hour=19, max_restart_instances_per_hour=20), Verdict.NEEDS_APPROVAL,
         "destructive"),
        (RESTART, ctx(restart_instances_last_hour=20, continues_counted_operation=True), Verdict.DENY,
         "20 instance restarts in the last hour reached the cap of 20"),
        (DRAIN, ctx(restart_instances_last_hour=20), Verdict.ALLOW, "auto mode"),  # a drain restarts nothing
        # putting an instance back is never counted nor refused by either cap, whoever drained it
        (RESTORE, ctx(**FULL, restart_instances_last_hour=20), Verdict.ALLOW, "auto mode"),
        (RESTORE, ctx(**FULL, mode=Mode.APPROVE), Verdict.NEEDS_APPROVAL, "approve mode"),
        (RESTORE, ctx(**FULL, kill_switch=True), Verdict.DENY, "kill switch"),  # the kill switch still stops it
    ],
)
def test_evaluate_rules(plan: Plan, context: PolicyContext, verdict: Verdict, reason_part: str) -> None:
    decision = evaluate(plan, context)
    assert decision.verdict is verdict
    assert any(reason_part in reason for reason in decision.reasons), decision.reasons


def test_denial_lists_every_reason_not_only_the_first() -> None:
    decision = evaluate(ROLLBACK, ctx(kill_switch=True, other_active_remediations=2, evidence_confirmed=False))
    assert decision.verdict is Verdict.DENY
    assert len(decision.reasons) == 3


def test_evaluate_is_pure_same_input_same_output() -> None:
    context = ctx(mode=Mode.APPROVE)
    assert evaluate(MAINT, context) == evaluate(MAINT, context)


def test_a_rolling_restart_step_continues_the_operation_once_a_drain_or_restart_of_it_was_applied() -> None:
    assert not continues_operation(DRAIN, [])
    assert not continues_operation(DRAIN, [RESTORE])  # a restore alone starts nothing the cap counted
    assert continues_operation(DRAIN, [DRAIN]) and continues_operation(RESTART, [DRAIN])
    assert not continues_operation(MAINT, [DRAIN])  # another kind of change is its own operation
