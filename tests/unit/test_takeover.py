"""Which dead runs are continued at recover and which are escalated: only a run whose fix was applied, with every
action settled and nothing re-contained, is continued; everything else is escalated naming what is still in effect."""

from __future__ import annotations

from datetime import timedelta

import pytest

from remediation.models import (
    ActionRecord,
    ActionState,
    DisableMaintenance,
    EnableMaintenance,
    Mode,
    Phase,
    Plan,
    Rollback,
    ScaleUp,
    Verdict,
    utcnow,
)
from remediation.takeover import MAX_CONTINUATIONS, Next, decide, in_effect

MAINTENANCE = EnableMaintenance(service="web", path_prefixes=("/api/cart",))
LIFT = DisableMaintenance(service="web", path_prefixes=("/api/cart",))
ROLLBACK = Rollback(service="web", to_release="r1", from_release="r2")


def step(phase: Phase, plan: Plan, state: ActionState = ActionState.APPLIED, n: int = 0) -> ActionRecord:
    return ActionRecord(phase=phase, plan=plan, decision=Verdict.ALLOW, state=state,
                        started_at=utcnow() + timedelta(seconds=n))


CONTAINED = step(Phase.CONTAIN, MAINTENANCE, n=0)
FIXED = step(Phase.REMEDIATE, ROLLBACK, n=1)


@pytest.mark.parametrize(("runbook", "mode", "ledger", "expected", "why"), [
    ("elevated-error-rate", Mode.AUTO, [CONTAINED, FIXED], Next.CONTINUE, "its fix was applied"),
    ("elevated-error-rate", Mode.AUTO, [CONTAINED, FIXED, step(Phase.RECOVER, LIFT, n=2)], Next.CONTINUE,
     "its fix was applied"),
    ("elevated-error-rate", Mode.AUTO, [CONTAINED], Next.ESCALATE, "only contained"),
    ("elevated-error-rate", Mode.AUTO, [], Next.ESCALATE, "changed nothing"),
    ("elevated-error-rate", Mode.AUTO, [CONTAINED, step(Phase.REMEDIATE, ROLLBACK, ActionState.INTENT, 1)],
     Next.ESCALATE, "outcome is not known"),
    ("elevated-error-rate", Mode.AUTO, [CONTAINED, step(Phase.REMEDIATE, ROLLBACK, ActionState.UNKNOWN, 1)],
     Next.ESCALATE, "outcome is not known"),
    ("elevated-error-rate", Mode.AUTO, [CONTAINED, step(Phase.REMEDIATE, ROLLBACK, ActionState.FAILED, 1)],
     Next.ESCALATE, "before its fix was applied"),
    ("elevated-error-rate", Mode.AUTO,
     [CONTAINED, FIXED, step(Phase.RECOVER, LIFT, n=2), step(Phase.RECOVER, MAINTENANCE, n=3)], Next.ESCALATE,
     "did not hold"),
    ("elevated-error-rate", Mode.DRY_RUN, [step(Phase.REMEDIATE, ROLLBACK, ActionState.PLANNED)], Next.ESCALATE,
     "dry run"),
    ("high-latency", Mode.AUTO, [step(Phase.CONTAIN, ScaleUp(service="web", from_replicas=2, to_replicas=4))],
     Next.CONTINUE, "its fix was applied"),
    ("suspicious-upload", Mode.AUTO, [CONTAINED, FIXED], Next.ESCALATE, "cannot continue from its ledger"),
    ("rolling-restart", Mode.AUTO, [CONTAINED, FIXED], Next.ESCALATE, "cannot continue from its ledger"),
])
def test_decide(runbook: str, mode: Mode, ledger: list[ActionRecord], expected: Next, why: str) -> None:
    takeover = decide(runbook, mode, ledger)
    assert takeover.next is expected
    assert why in takeover.reason


def test_an_incident_that_keeps_dying_is_continued_at_most_max_continuations_times() -> None:
    assert decide("elevated-error-rate", Mode.AUTO, [CONTAINED, FIXED], MAX_CONTINUATIONS - 1).next is Next.CONTINUE
    stop = decide("elevated-error-rate", Mode.AUTO, [CONTAINED, FIXED], MAX_CONTINUATIONS)
    assert stop.next is Next.ESCALATE and "died again" in stop.reason


def test_what_is_in_effect_excludes_undone_changes_and_the_undoes_themselves() -> None:
    lifted = step(Phase.RECOVER, LIFT, n=2)
    assert in_effect([CONTAINED, FIXED, lifted]) == [FIXED]
    assert in_effect([CONTAINED, FIXED]) == [CONTAINED, FIXED]
    assert in_effect([CONTAINED, step(Phase.REMEDIATE, ROLLBACK, ActionState.FAILED, 1)]) == [CONTAINED]


def test_an_escalation_names_each_change_in_effect_with_its_undo() -> None:
    takeover = decide("elevated-error-rate", Mode.AUTO, [CONTAINED])
    (named,) = takeover.in_effect
    assert "enable_maintenance" in named and "undo: disable_maintenance" in named and CONTAINED.id in named


def test_a_half_done_step_is_continued_only_when_the_continuation_reads_it_back_first() -> None:
    lifting = step(Phase.RECOVER, LIFT, ActionState.INTENT, n=2)
    read_first = decide("elevated-error-rate", Mode.AUTO, [CONTAINED, FIXED, lifting], read_back_first=True)
    assert read_first.next is Next.CONTINUE and "read back" in read_first.reason
    assert decide("elevated-error-rate", Mode.AUTO, [CONTAINED, FIXED, lifting]).next is Next.ESCALATE
    rolling_back = step(Phase.REMEDIATE, ROLLBACK, ActionState.UNKNOWN, n=1)
    assert decide("elevated-error-rate", Mode.AUTO, [CONTAINED, rolling_back], read_back_first=True).next \
        is Next.CONTINUE, "a fix that may have landed is read back by the continuation"
    assert decide("elevated-error-rate", Mode.AUTO, [CONTAINED], read_back_first=True).next is Next.ESCALATE
