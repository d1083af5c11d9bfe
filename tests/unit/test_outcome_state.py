"""A finished run's Prefect state names its outcome, and the zombie automation counts those names as final."""

from __future__ import annotations

import pytest

from remediation.models import OUTCOME_STATE_NAMES, Outcome
from remediation.orchestration.limits import _zombie_automation
from remediation.run import outcome_state


@pytest.mark.parametrize(("outcome", "name"), [
    (Outcome.RECOVERED, "Recovered"), (Outcome.STOOD_DOWN, "StoodDown"), (Outcome.DRY_RUN, "DryRun"),
    (Outcome.ESCALATED, "Escalated"), (Outcome.DENIED, "Denied"),
])
def test_the_final_state_is_completed_under_the_outcomes_name_and_holds_the_summary(outcome: Outcome,
                                                                                    name: str) -> None:
    summary = {"outcome": outcome.value, "escalation": "rollback denied" if outcome is Outcome.DENIED else None}
    state = outcome_state(summary)
    assert state.is_completed() and state.name == name
    assert state.data == summary  # what a caller awaiting the runbook gets back
    assert (state.message or "").startswith("rollback denied" if outcome is Outcome.DENIED else "outcome ")


def test_every_outcome_has_a_state_name_without_spaces_like_prefects_own() -> None:
    assert set(OUTCOME_STATE_NAMES) == set(Outcome)
    assert all(name.isalpha() for name in OUTCOME_STATE_NAMES.values())


def test_the_heartbeat_automation_expects_every_outcome_name_so_it_never_crashes_a_finished_run() -> None:
    expect = _zombie_automation(120.0).trigger.expect
    assert {f"prefect.flow-run.{name}" for name in OUTCOME_STATE_NAMES.values()} <= expect
