"""Which ledger state a lever call that raised ends in, and the words the ledger keeps for it.

Pure decisions, no I/O (the gate does the calls): a call that certainly changed nothing is ``failed`` at once; one
that may have changed something (its answer was lost, or it failed part-way through a plan of several calls) is
``unknown`` until the platform is read back (``remediation.read_back``), and then ``applied``, ``failed`` ("not
applied (read back: ...)") or still ``unknown`` on what the read showed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from remediation.call_outcome import CallOutcome, describe
from remediation.models import ActionRecord, ActionState


@dataclass(frozen=True)
class ReadBack:
    """What reading the platform back showed: ``applied`` None when it cannot tell; ``evidence`` what was read."""

    applied: bool | None
    evidence: str


@dataclass(frozen=True)
class Settled:
    """The ledger's final word on an action whose lever call raised."""

    state: ActionState
    error: str
    read_back: str | None = None


def must_read_back(outcome: CallOutcome, steps_done: Sequence[str]) -> bool:
    """Whether the platform may have changed: the answer was lost, or earlier calls of the same plan went through
    (maintenance on two of three prefixes is a containment nobody would undo if it were recorded ``failed``)."""
    return outcome is CallOutcome.ANSWER_LOST or bool(steps_done)


def not_applied(outcome: CallOutcome, exc: BaseException) -> Settled:
    """A call that certainly changed nothing (:func:`must_read_back` is False)."""
    if outcome is CallOutcome.NOT_SENT:
        return Settled(ActionState.FAILED, f"not applied: the request never reached the platform ({describe(exc)})")
    return Settled(ActionState.FAILED, describe(exc))  # refused: the platform's own words, as always


def uncertainty(outcome: CallOutcome, exc: BaseException, steps_done: Sequence[str]) -> str:
    """Why the outcome is unknown, before the read-back: what the ledger says while the gate reads."""
    if outcome is CallOutcome.ANSWER_LOST:
        why = f"the answer was lost ({describe(exc)})"
    else:
        why = f"it failed part-way ({describe(exc)})"
    return why + (f" after {'; '.join(steps_done)}" if steps_done else "")


def settle(why_unknown: str, found: ReadBack) -> Settled:
    """The final state on the read-back's evidence."""
    if found.applied is True:
        return Settled(ActionState.APPLIED, f"applied (read back: {found.evidence}); {why_unknown}", found.evidence)
    if found.applied is False:
        return Settled(ActionState.FAILED, f"not applied (read back: {found.evidence}); {why_unknown}",
                       found.evidence)
    return Settled(ActionState.UNKNOWN, f"outcome unknown: {why_unknown}, and the read-back could not tell "
                                        f"({found.evidence})", found.evidence)


def unknown_outcomes_text(actions: Sequence[ActionRecord]) -> str:
    """What an escalation says about actions left ``unknown``: each one, what was read, and the plan that undoes it."""
    described = []
    for action in actions:
        undo = action.plan.undo()
        described.append(f"{action.plan.summary()} (action {action.id}; {action.read_back or 'not read back'}); "
                         f"undo: {undo.summary() if undo else 'none (not revertible)'}")
    return "outcome unknown, check by hand whether it took effect: " + " | ".join(described)
