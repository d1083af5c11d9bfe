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

from collections.abc import Callable, Sequence
from datetime import datetime
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
    @property
    def started_at(self) -> datetime: ...


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
    unsettled = sum(1 for row in rows if row.state in UNSETTLED_STATES)
    not_known = "an action's outcome is not known: a person must check it before anything continues"
    if unsettled and not read_back_first:
        return Takeover(next=Next.ESCALATE, in_effect=effect, reason=not_known)
    # From here a half-done step counts as taken effect: the continuation reads it back and decides again.
    blocker = _blocker(runbook, rows, continuations, effect)
    if blocker is not None:
        return Takeover(next=Next.ESCALATE, in_effect=effect, reason=not_known if unsettled else blocker)
    reason = "its fix was applied: a new run verifies it again, then undoes the containment"
    if unsettled:
        reason += f", once {unsettled} half-done step(s) are read back from the platform"
    return Takeover(next=Next.CONTINUE, in_effect=effect, reason=reason)


def _blocker(runbook: str, rows: Sequence[Step], continuations: int, effect: tuple[str, ...]) -> str | None:
    """Why the incident cannot be continued at recover; None when it can."""
    at_recover = RESUMABLE.get(runbook)
    if at_recover is None:
        return f"{runbook} cannot continue from its ledger alone: a person takes over"
    if continuations >= MAX_CONTINUATIONS:
        return f"already continued {continuations} times and died again: a person takes over"
    fixes = [row for row in rows if row.phase is at_recover and not _undoes_earlier(row, rows, _took_effect)]
    if not any(_took_effect(row) for row in fixes):
        only = "it had only contained" if effect else "it had changed nothing"
        return f"the run died before its fix was applied ({only})"
    if not all(_took_effect(row) for row in fixes):
        return "part of its fix was not applied: the run would have escalated"
    if any(_contains_again(row, rows) for row in rows):
        return "the run had found that the fix did not hold and contained again"
    return None


def in_effect(rows: Sequence[S]) -> list[S]:
    """Applied changes still in place: not themselves an undo, and not undone by a later applied row."""
    applied = [row for row in rows if row.state is ActionState.APPLIED]
    return [row for i, row in enumerate(applied)
            if not _undoes_earlier(row, rows) and not any(undoes(later.plan, row.plan) for later in applied[i + 1:])]


def describe(row: Step) -> str:
    """One ledger row for a person: what it changed, which action, when, and the plan that undoes it."""
    undo = row.plan.undo()
    return (f"{row.plan.summary()} (action {row.id}, started {row.started_at:%Y-%m-%d %H:%M:%S}Z; "
            f"undo: {undo.summary() if undo else 'none, a person decides'})")


def _contains_again(row: Step, rows: Sequence[Step]) -> bool:
    """A recover-phase step that re-applies a containment: the run had seen its fix fail."""
    if row.phase is not Phase.RECOVER or not _took_effect(row):
        return False
    shape = row.plan.model_dump(exclude={"reason"})
    return any(other.phase is Phase.CONTAIN and other.plan.model_dump(exclude={"reason"}) == shape for other in rows)


def _took_effect(row: Step) -> bool:
    """Applied, or half-done (only judged so once ``decide`` knows a continuation will read it back first)."""
    return row.state is ActionState.APPLIED or row.state in UNSETTLED_STATES


def _undoes_earlier(row: Step, rows: Sequence[Step], counts: Callable[[Step], bool] | None = None) -> bool:
    """Whether ``row`` puts back an earlier change that ``counts`` (default: applied)."""
    counts = counts or (lambda other: other.state is ActionState.APPLIED)
    earlier = next((rows[:i] for i, other in enumerate(rows) if other.id == row.id), rows)
    return any(undoes(row.plan, other.plan) for other in earlier if counts(other))
