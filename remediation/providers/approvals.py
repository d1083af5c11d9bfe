"""Asking a human before a step: Prefect's pause/resume in a run, scripted answers in tests.

Both implementations share the same rule: an answer counts only if the approver is on the allow-list; any
other name is recorded as REFUSED and the run keeps waiting for a real approver until the deadline. A
timeout is a deny.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from remediation.models import Approval, ApprovalAnswer
from remediation.providers.clock import Clock, RealClock

TIMEOUT_APPROVER = "remediate:timeout"


class ApprovalRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    incident_id: str
    title: str
    description: str  # Markdown shown above the form
    timeout_s: float = Field(gt=0)
    approvers: tuple[str, ...]


class Approvals(Protocol):
    async def request(self, req: ApprovalRequest) -> list[Approval]:
        """Every answer received, in order; the last one is final (approved, denied or timeout)."""
        ...


def classify(approve: bool, approver: str, reason: str, allowed: Sequence[str]) -> Approval:
    name = approver.strip()
    if name not in allowed:
        why = f"'{name or '(no name)'}' is not on the approver list"
        return Approval(answer=ApprovalAnswer.REFUSED, approver=name, reason=f"{why}; {reason}".strip("; "))
    return Approval(answer=ApprovalAnswer.APPROVED if approve else ApprovalAnswer.DENIED,
                    approver=name, reason=reason)


def timed_out(timeout_s: float) -> Approval:
    return Approval(answer=ApprovalAnswer.TIMEOUT, approver=TIMEOUT_APPROVER,
                    reason=f"no approval within {timeout_s:g}s: treated as deny")


@dataclass(frozen=True)
class Scripted:
    """One scripted answer; ``approver=None`` means nobody answers (the request times out)."""

    approve: bool = False
    approver: str | None = None
    reason: str = ""


class ScriptedApprovals:
    """Answers from a script, through the same allow-list rule as a real pause."""

    def __init__(self, answers: Sequence[Scripted], clock: Clock | None = None) -> None:
        self._answers = list(answers)
        self._clock = clock or RealClock()
        self.requests: list[ApprovalRequest] = []

    async def request(self, req: ApprovalRequest) -> list[Approval]:
        self.requests.append(req)
        received: list[Approval] = []
        while self._answers:
            scripted = self._answers.pop(0)
            if scripted.approver is None:
                break
            answer = classify(scripted.approve, scripted.approver, scripted.reason, req.approvers)
            received.append(answer)
            if answer.answer is not ApprovalAnswer.REFUSED:
                return received
        await self._clock.sleep(req.timeout_s)
        received.append(timed_out(req.timeout_s))
        return received

