"""What a live replica does with an incident whose run died: continue it at recover, or hand it to a person.

Closing a dead run's incident as escalated (``remediation.reconcile``) is always safe, but it leaves whatever the run
changed in place until someone reads the timeline. When the ledger shows the run got as far as its fix (every
mutation settled, the fix applied, nothing re-contained), the same runbook can pick up where it stopped: verify
again, then undo its containment. That is a new flow run, recorded on the incident as its continuation; it never runs
identify, contain or remediate again, so no applied step is executed twice.

Everything else is escalated with what is still in effect and how to undo it: a run that had only contained, a
half-done (``intent``/``unknown``) action, a runbook whose recover phase cannot be rebuilt from the ledger alone, or
an incident already continued :data:`MAX_CONTINUATIONS` times (a run that keeps dying must not loop for ever).

Pure: the reconciler gives it the ledger, it says what to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from remediation.models import UNSETTLED_STATES, ActionState, Mode, Phase, Plan, undoes


class Step(Protocol):
    """A ledger entry as the store returns it (``ActionRow``) or a run holds it (``ActionRecord``)."""

    @property
    def id(self) -> str: ...
    @property
    def phase(self) -> Phase: ...
    @property
    def plan(self) -> Plan: ...
    @property
    def state(self) -> ActionState: ...


S = TypeVar("S", bound=Step)

#: Runbooks whose recover phase runs from the ledger alone, and the phase whose applied action puts a run "at
#: recover". High latency's fix *is* its containment (scale up or shed load; the remediate phase only advises), and its
#: recover phase watches under it and then undoes it. The others verify a fix made in remediate, then undo containment.
#: Not here: suspicious-upload (its recover decides from the audit log whether the source is blocked) and
#: rolling-restart (a half-done restart needs a person to see the fleet).
RESUMABLE: dict[str, Phase] = {
    "elevated-error-rate": Phase.REMEDIATE,
    "database-errors": Phase.REMEDIATE,
    "auth-access": Phase.REMEDIATE,
    "high-latency": Phase.CONTAIN,
}
#: Continuation runs one incident may get; the next death closes it escalated.
MAX_CONTINUATIONS = 2
#: The timeline event that records a continuation (counted against MAX_CONTINUATIONS).
CONTINUED_EVENT = "taken over: continued at recover"


class Next(StrEnum):
    CONTINUE = "continue"  # start a new run of the runbook at recover
    ESCALATE = "escalate"  # close as escalated, naming what is in effect and its undo


class Takeover(BaseModel):
    model_config = ConfigDict(frozen=True)

    next: Next
    reason: str
    in_effect: tuple[str, ...] = ()  # applied changes not undone since, each with its undo


def decide(runbook: str, mode: Mode, rows: Sequence[Step], continuations: int = 0, *,
           read_back_first: bool = False) -> Takeover:
    """Continue at recover, or escalate, for an incident whose run died with ``rows`` in its ledger.

    ``read_back_first``: a continuation will read the half-done steps back from the platform before it acts (and
    decide again on what it reads), so they are judged as if they took effect; otherwise a half-done step escalates."""
    effect = tuple(describe(row) for row in in_effect(rows))
    if mode is Mode.DRY_RUN:
        return Takeover(next=Next.ESCALATE, reason="a dry run changed nothing: nothing to continue")
    unsettled = [row for row in rows if row.state in UNSETTLED_STATES]
    if unsettled and read_back_first:
        hoped = decide(runbook, mode, [_as_applied(row) if row in unsettled else row for row in rows], continuations)
        if hoped.next is Next.CONTINUE:
            return hoped.model_copy(update={
                "in_effect": effect, "reason": f"{hoped.reason}, once {len(unsettled)} half-done step(s) are read "
                                               "back from the platform"})
    if unsettled:
        return Takeover(next=Next.ESCALATE, in_effect=effect,
                        reason="an action's outcome is not known: a person must check it before anything continues")
    at_recover = RESUMABLE.get(runbook)
    if at_recover is None:
        return Takeover(next=Next.ESCALATE, in_effect=effect,
                        reason=f"{runbook} cannot continue from its ledger alone: a person takes over")
    if continuations >= MAX_CONTINUATIONS:
        return Takeover(next=Next.ESCALATE, in_effect=effect,
                        reason=f"already continued {continuations} times and died again: a person takes over")
    fixes = [row for row in rows if row.phase is at_recover and not _undoes_earlier(row, rows)]
    if not any(row.state is ActionState.APPLIED for row in fixes):
        only = "it had only contained" if effect else "it had changed nothing"
        return Takeover(next=Next.ESCALATE, in_effect=effect,
                        reason=f"the run died before its fix was applied ({only})")
    if any(row.state is not ActionState.APPLIED for row in fixes):
        return Takeover(next=Next.ESCALATE, in_effect=effect,
                        reason="part of its fix was not applied: the run would have escalated")
    if any(_contains_again(row, rows) for row in rows):
        return Takeover(next=Next.ESCALATE, in_effect=effect,
                        reason="the run had found that the fix did not hold and contained again")
    return Takeover(next=Next.CONTINUE, in_effect=effect,
                    reason="its fix was applied: a new run verifies it again, then undoes the containment")


def in_effect(rows: Sequence[S]) -> list[S]:
    """Applied changes still in place: not themselves an undo, and not undone by a later applied row."""
    applied = [row for row in rows if row.state is ActionState.APPLIED]
    return [row for i, row in enumerate(applied)
            if not _undoes_earlier(row, rows) and not any(undoes(later.plan, row.plan) for later in applied[i + 1:])]


def describe(row: Step) -> str:
    undo = row.plan.undo()
    return f"{row.plan.summary()} (action {row.id}; undo: {undo.summary() if undo else 'none, a person decides'})"


class _Applied(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    phase: Phase
    plan: Plan
    state: ActionState = ActionState.APPLIED


def _as_applied(row: Step) -> Step:
    return _Applied(id=row.id, phase=row.phase, plan=row.plan)


def _contains_again(row: Step, rows: Sequence[Step]) -> bool:
    """A recover-phase step that re-applies a containment: the run had seen its fix fail."""
    if row.phase is not Phase.RECOVER or row.state is not ActionState.APPLIED:
        return False
    shape = row.plan.model_dump(exclude={"reason"})
    return any(other.phase is Phase.CONTAIN and other.plan.model_dump(exclude={"reason"}) == shape for other in rows)


def _undoes_earlier(row: Step, rows: Sequence[Step]) -> bool:
    earlier = next((rows[:i] for i, other in enumerate(rows) if other.id == row.id), rows)
    return any(undoes(row.plan, other.plan) for other in earlier if other.state is ActionState.APPLIED)
