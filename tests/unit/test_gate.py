"""The gate is where permission is enforced: no plan is applied without ALLOW or a granted approval,
and the ledger's intent row exists before the mutation starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from remediation import gate
from remediation.models import (
    ActionRecord,
    ActionState,
    Alert,
    Approval,
    ApprovalAnswer,
    EnableMaintenance,
    Mode,
    Phase,
    Rollback,
    Severity,
    Verdict,
)
from remediation.runtime import Providers
from remediation.settings import Settings
from remediation.store import Store

PLAN = EnableMaintenance(service="svc", path_prefixes=("/api/checkout",))


class RecordingEdge:
    """Edge controls that check, at mutation time, that the ledger already holds the intent."""

    def __init__(self, store: Store, incident_id: str, fail: bool = False) -> None:
        self.store, self.incident_id, self.fail = store, incident_id, fail
        self.prefixes: set[str] = set()
        self.states_seen_at_mutation: list[str] = []

    async def set_maintenance(self, prefix: str, enabled: bool) -> bool:
        self.states_seen_at_mutation += [a.state.value for a in self.store.actions(self.incident_id)]
        if self.fail:
            raise RuntimeError("edge API said no")
        before = set(self.prefixes)
        (self.prefixes.add if enabled else self.prefixes.discard)(prefix)
        return before != self.prefixes


class NoDeploys:
    async def rollback(self, to_release: str) -> None:
        raise AssertionError("must never be called")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(f"sqlite:///{tmp_path / 'r.db'}")
    s.migrate()
    s.open_incident(incident_id="inc-1", runbook="rb", service="svc", severity=Severity.SEV2, mode=Mode.AUTO,
                    alert=Alert(name="a", service="svc"))
    return s


def providers(store: Store, edge: RecordingEdge) -> Providers:
    return Providers(settings=Settings(), metrics=None, deploys=NoDeploys(), edge=edge, logs=None,  # type: ignore[arg-type]
                     errors=None, approvals=None, store=store)  # type: ignore[arg-type]


async def test_allowed_plan_writes_intent_before_mutating_and_completes_after(store: Store) -> None:
    edge = RecordingEdge(store, "inc-1")
    record = ActionRecord(phase=Phase.CONTAIN, plan=PLAN, decision=Verdict.ALLOW)
    done = await gate.apply(record, "inc-1", providers(store, edge))
    assert edge.states_seen_at_mutation == ["intent"]
    assert done.state is ActionState.APPLIED
    assert [a.state for a in store.actions("inc-1")] == [ActionState.APPLIED]
    assert edge.prefixes == {"/api/checkout"}


@pytest.mark.parametrize(
    ("decision", "approval"),
    [
        (Verdict.DENY, None),
        (Verdict.NEEDS_APPROVAL, None),
        (Verdict.NEEDS_APPROVAL, Approval(answer=ApprovalAnswer.DENIED, approver="bob")),
        (Verdict.NEEDS_APPROVAL, Approval(answer=ApprovalAnswer.TIMEOUT)),
        (Verdict.NEEDS_APPROVAL, Approval(answer=ApprovalAnswer.REFUSED, approver="mallory")),
    ],
)
async def test_gate_refuses_without_permission_and_changes_nothing(
    store: Store, decision: Verdict, approval: Approval | None
) -> None:
    plan = Rollback(service="svc", from_release="b", to_release="a")
    record = ActionRecord(phase=Phase.REMEDIATE, plan=plan, decision=decision, approval=approval)
    with pytest.raises(gate.GateRefused):
        await gate.apply(record, "inc-1", providers(store, RecordingEdge(store, "inc-1")))
    assert store.actions("inc-1") == []


async def test_granted_approval_passes_the_gate(store: Store) -> None:
    edge = RecordingEdge(store, "inc-1")
    record = ActionRecord(phase=Phase.CONTAIN, plan=PLAN, decision=Verdict.NEEDS_APPROVAL,
                          approval=Approval(answer=ApprovalAnswer.APPROVED, approver="alice"))
    assert (await gate.apply(record, "inc-1", providers(store, edge))).applied


async def test_a_failing_mutation_is_recorded_as_failed_not_lost(store: Store) -> None:
    edge = RecordingEdge(store, "inc-1", fail=True)
    record = ActionRecord(phase=Phase.CONTAIN, plan=PLAN, decision=Verdict.ALLOW)
    done = await gate.apply(record, "inc-1", providers(store, edge))
    assert done.state is ActionState.FAILED and "edge API said no" in (done.error or "")
    rows = store.actions("inc-1")
    assert [r.state for r in rows] == [ActionState.FAILED]
    assert store.dangling_actions() == []
