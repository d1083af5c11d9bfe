"""Asking people before a step: Prefect's pause/resume in a run, scripted answers in tests.

An implementation only *collects* answers. Whether an answer counts is decided by the :class:`Ballot` the run
hands it (remediation.ballot: the server's allow-list, the approver's second factor, the step the answer names,
how many distinct people must agree). The implementation keeps asking until the ballot has decided or the
deadline passes; a timeout is a deny.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from remediation.models import Approval
from remediation.providers.capabilities import Clock
from remediation.providers.clock import RealClock

if TYPE_CHECKING:
    from remediation.providers.capabilities import Ballot

TIMEOUT_APPROVER = "remediate:timeout"


class Answer(BaseModel):
    """One answer as it arrived, before anything about it is believed."""

    model_config = ConfigDict(frozen=True)

    approve: bool = False
    approver: str = ""
    reason: str = ""
    code: str = ""  # the approver's current TOTP code
    step: str = ""  # the pending step this answer is for (remediation.approvers.step_binding)
    answer_id: str = ""  # chosen by the answerer to find the run's verdict
    slack: str = ""  # a signed Slack request (remediation.slack_proof.SignedRequest.dumps), when it came from Slack


class ApprovalRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    incident_id: str
    title: str
    description: str  # Markdown shown above the form
    timeout_s: float = Field(gt=0)
    step: str  # what an answer names to count for this step (prefilled in the form)


@dataclass(frozen=True)
class Scripted:
    """One scripted answer; ``approver=None`` means nobody answers (the request times out).

    ``step=None`` answers the step being asked (as the prefilled form does); a string names another one.
    """

    approve: bool = False
    approver: str | None = None
    reason: str = ""
    code: str = ""
    step: str | None = None
    slack: str = ""


class ScriptedApprovals:
    """Answers from a script, judged by the run's ballot exactly like a real pause's answers."""

    def __init__(self, answers: Sequence[Scripted], clock: Clock | None = None) -> None:
        self._answers = list(answers)
        self._clock = clock or RealClock()
        self.requests: list[ApprovalRequest] = []

    async def request(self, req: ApprovalRequest, ballot: Ballot) -> Approval:
        self.requests.append(req)
        while self._answers:
            scripted = self._answers.pop(0)
            if scripted.approver is None:
                break
            ballot.judge(Answer(approve=scripted.approve, approver=scripted.approver, reason=scripted.reason,
                                code=scripted.code, step=req.step if scripted.step is None else scripted.step,
                                slack=scripted.slack))
            if ballot.decided is not None:
                return ballot.decided
        await self._clock.sleep(req.timeout_s)
        return ballot.timed_out()
