"""Approval by pausing the Prefect flow run for typed input (the UI renders the form; the CLI resumes).

A caught ``FlowPauseTimeout`` makes Prefect force the run to Failed and drop its return value
(docs/reference/prefect.md §1.4). We keep the run honest instead: the pause is given a grace period beyond our own
deadline, and at our deadline the run resumes *itself* with a deny, so the runbook carries on to escalate
and the run ends with its report.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import pydantic
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout, Pause
from prefect.flow_runs import apause_flow_run, aresume_flow_run
from prefect.input import RunInput
from prefect.input.run_input import keyset_from_paused_state
from prefect.states import Paused
from pydantic import Field

from remediation import approvers
from remediation.models import Approval
from remediation.orchestration import resumable
from remediation.providers.approvals import TIMEOUT_APPROVER, Answer, ApprovalRequest
from remediation.providers.capabilities import Ballot, Clock
from remediation.providers.clock import RealClock

GRACE_S = 60
#: Key in the run context's pause counters: approvals asked by this execution so far.
APPROVALS_COUNTER = "remediation:approvals"


#: The two answers to a waiting step, as the Resume form's "Decision" select offers them.
Decision = Literal["approve", "deny"]
APPROVE: Decision = "approve"
DENY: Decision = "deny"


class ApprovalInput(RunInput):
    """The form a person fills in to answer (the Prefect UI's Resume dialog, under the plan's description).

    The decision, name and reason have no default, so the server rejects a bare Resume and the run stays paused. The
    decision is a choice between "approve" and "deny" (a select in the UI), never a switch whose untouched "off"
    would mean deny. ``step`` is prefilled with the step being asked (:func:`form_for`); an answer naming another
    step is refused. Every field has a length limit the server enforces against the stored schema, below what the
    store can hold. Whether the answer counts is decided by the run (remediation.ballot), never here.
    """

    decision: Decision = Field(title="Decision",
                               description="Required. approve: carry out the step above. deny: do not (the runbook "
                                           "escalates instead).")
    approver: str = Field(title="Your name", min_length=1, max_length=approvers.NAME_MAX,
                          description="Required: your enrolled approver name. Any other name is refused and recorded, "
                                      "and the run waits for an approver.")
    code: str = Field("", title="Code", max_length=6, pattern=approvers.CODE_PATTERN,
                      description="The 6-digit code your authenticator app shows now (remediate approvers enroll). "
                                  "Each code counts once.")
    reason: str = Field(title="Reason", max_length=approvers.REASON_MAX,
                        description="Required: a ticket or justification (may be short); stored with the answer.")
    step: str = Field(title="Step (filled in: leave as it is)", max_length=approvers.STEP_MAX,
                      description="The step this answer is for. An answer for another step is refused.")
    answer_id: str = Field("", title="Answer id (filled in by remediate approve: leave empty)",
                           max_length=approvers.ANSWER_ID_MAX)
    slack: str = Field("", title="Slack proof (filled in by serve: leave empty)",
                       max_length=approvers.SLACK_PROOF_MAX)

    def answer(self) -> Answer:
        return Answer(approve=self.decision == APPROVE, approver=self.approver, reason=self.reason, code=self.code,
                      step=self.step, answer_id=self.answer_id, slack=self.slack)


def run_input(*, approve: bool, approver: str, reason: str, step: str, code: str = "", answer_id: str = "",
              slack: str = "") -> dict[str, str]:
    """The form's fields as a resume sends them (``remediate approve``, Slack, the run's own deny at its deadline)."""
    return {"decision": APPROVE if approve else DENY, "approver": approver, "reason": reason, "code": code,
            "step": step, "answer_id": answer_id, "slack": slack}


def form_for(req: ApprovalRequest) -> type[ApprovalInput]:
    """The form with this step prefilled. Prefect's ``with_initial_data`` would drop the field's title and limits."""
    step_field = ApprovalInput.model_fields["step"]
    form = pydantic.create_model(
        "ApprovalInput", __base__=ApprovalInput,
        step=(str, Field(req.step, title=step_field.title, description=step_field.description,
                         max_length=approvers.STEP_MAX)))
    form._description = req.description
    return form


class PrefectApprovals:
    def __init__(self, poll_interval_s: int = 2, clock: Clock | None = None) -> None:
        self.poll_interval_s = poll_interval_s
        self._clock = clock or RealClock()

    async def request(self, req: ApprovalRequest, ballot: Ballot) -> Approval:
        context = FlowRunContext.get()
        if context is None or context.flow_run is None:
            raise RuntimeError("PrefectApprovals needs a running flow: there is nothing to pause")
        deadline = self._clock.monotonic() + req.timeout_s
        while ballot.decided is None:
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                return ballot.timed_out()
            answer = await self._pause_once(context, req, remaining)
            if answer is None:
                return ballot.timed_out()
            ballot.judge(answer)
        return ballot.decided

    async def _pause_once(self, context: FlowRunContext, req: ApprovalRequest, remaining: float) -> Answer | None:
        assert context.flow_run is not None
        run_id = context.flow_run.id
        # The n-th approval of this execution, so that a run executed again after our own restart asks under the same
        # key and the server recognises the pause as answered already (remediation.orchestration.resumable).
        count = context.observed_flow_pauses.get(APPROVALS_COUNTER, 0) + 1
        context.observed_flow_pauses[APPROVALS_COUNTER] = count
        key = f"{req.incident_id}-{count}"
        pause = apause_flow_run(wait_for_input=form_for(req), timeout=int(remaining) + GRACE_S,
                                poll_interval=self.poll_interval_s, key=key)
        try:
            with resumable.waiting(run_id, key, req.incident_id):
                # A served run's own process parks itself when its serve asks at shutdown (resumable, 5-7).
                result = await asyncio.wait_for(
                    resumable.unless_parked(pause, run_id, key, self.poll_interval_s), timeout=remaining)
        except (TimeoutError, FlowPauseTimeout):
            return await self._resume_self_with_deny(run_id, key, req)
        except asyncio.CancelledError:
            parked = resumable.parked_state(run_id)
            if parked is None:
                raise  # an ordinary cancellation or crash
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            raise Pause(state=parked) from None  # the engine leaves the run suspended, resumable after a restart
        return result.answer()

    async def _resume_self_with_deny(self, run_id: Any, key: str, req: ApprovalRequest) -> Answer | None:
        try:
            await aresume_flow_run(run_id, run_input=run_input(approve=False, approver=TIMEOUT_APPROVER, step=req.step,
                                                               reason=f"no approval within {req.timeout_s:g}s"))
        except Exception:
            # Someone answered in the same instant: their input wins if the run is running again.
            async with get_client() as client:
                run = await client.read_flow_run(run_id)
            if run.state is None or not run.state.is_running():
                raise
            keyset = keyset_from_paused_state(Paused(pause_key=key))
            late = await ApprovalInput.aload(keyset, flow_run_id=run_id)
            return late.answer()
        return None
