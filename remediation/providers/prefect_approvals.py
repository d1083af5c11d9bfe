"""Approval by pausing the Prefect flow run for typed input (the UI renders the form; the CLI resumes).

A caught ``FlowPauseTimeout`` makes Prefect force the run to Failed and drop its return value
(docs/reference/prefect.md §1.4). We keep the run honest instead: the pause is given a grace period beyond our own
deadline, and at our deadline the run resumes *itself* with a deny, so the runbook carries on to escalate
and the run ends with its report.
"""

from __future__ import annotations

import asyncio
from typing import Any

from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext
from prefect.exceptions import FlowPauseTimeout, Pause
from prefect.flow_runs import apause_flow_run, aresume_flow_run
from prefect.input import RunInput
from prefect.input.run_input import keyset_from_paused_state
from prefect.states import Paused
from pydantic import Field

from remediation.models import Approval, ApprovalAnswer
from remediation.orchestration import resumable
from remediation.providers.approvals import TIMEOUT_APPROVER, ApprovalRequest, classify, timed_out
from remediation.providers.clock import Clock, RealClock

GRACE_S = 60
#: Key in the run context's pause counters: approvals asked by this execution so far.
APPROVALS_COUNTER = "remediation:approvals"


class ApprovalInput(RunInput):
    """The form a person fills in to answer (the Prefect UI's Resume dialog, under the plan's description).

    Name and reason have no default, so the server rejects a bare Resume (``'approver' is a required property``)
    and the run stays paused: only an answer someone signed counts. ``approve`` defaults to off, so a signed
    answer that never touched the switch is a deny. The self-resume at the deadline sends all three fields.
    """

    approve: bool = Field(False, title="Approve this step",
                          description="On: carry out the step above. Off: deny it (the runbook escalates instead).")
    approver: str = Field(title="Your name", min_length=1,
                          description="As on REMEDIATE_APPROVERS. Any other name is refused and recorded, and the "
                                      "run waits for a listed approver.")
    reason: str = Field(title="Reason", description="Ticket or justification; stored with the answer.")


class PrefectApprovals:
    def __init__(self, poll_interval_s: int = 2, clock: Clock | None = None) -> None:
        self.poll_interval_s = poll_interval_s
        self._clock = clock or RealClock()

    async def request(self, req: ApprovalRequest) -> list[Approval]:
        context = FlowRunContext.get()
        if context is None or context.flow_run is None:
            raise RuntimeError("PrefectApprovals needs a running flow: there is nothing to pause")
        deadline = self._clock.monotonic() + req.timeout_s
        received: list[Approval] = []
        while True:
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                received.append(timed_out(req.timeout_s))
                return received
            answer = await self._pause_once(context, req, remaining)
            if answer is None:
                received.append(timed_out(req.timeout_s))
                return received
            received.append(answer)
            if answer.answer is not ApprovalAnswer.REFUSED:
                return received

    async def _pause_once(self, context: FlowRunContext, req: ApprovalRequest, remaining: float) -> Approval | None:
        assert context.flow_run is not None
        run_id = context.flow_run.id
        # The n-th approval of this execution, so that a run executed again after our own restart asks under the same
        # key and the server recognises the pause as answered already (remediation.orchestration.resumable).
        count = context.observed_flow_pauses.get(APPROVALS_COUNTER, 0) + 1
        context.observed_flow_pauses[APPROVALS_COUNTER] = count
        key = f"{req.incident_id}-{count}"
        form = ApprovalInput.with_initial_data(description=req.description)
        pause = apause_flow_run(wait_for_input=form, timeout=int(remaining) + GRACE_S,
                                poll_interval=self.poll_interval_s, key=key)
        try:
            with resumable.waiting(run_id, key, req.incident_id):
                result = await asyncio.wait_for(pause, timeout=remaining)
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
        return classify(result.approve, result.approver, result.reason, req.approvers)

    async def _resume_self_with_deny(self, run_id: Any, key: str, req: ApprovalRequest) -> Approval | None:
        try:
            await aresume_flow_run(run_id, run_input={"approve": False, "approver": TIMEOUT_APPROVER,
                                                      "reason": f"no approval within {req.timeout_s:g}s"})
        except Exception:
            # Someone answered in the same instant: their input wins if the run is running again.
            async with get_client() as client:
                run = await client.read_flow_run(run_id)
            if run.state is None or not run.state.is_running():
                raise
            keyset = keyset_from_paused_state(Paused(pause_key=key))
            late = await ApprovalInput.aload(keyset, flow_run_id=run_id)
            return classify(late.approve, late.approver, late.reason, req.approvers)
        return None
