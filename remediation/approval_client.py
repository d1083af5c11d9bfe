"""Answering a waiting step from outside its run: the path of `remediate approve`, the demo and Slack.

This side only carries the answer. The run judges it with the server's configuration (remediation.ballot) and
records its verdict under the ``answer_id`` chosen here; :func:`answer` waits for that verdict and returns it, so
what the caller reports is what the run decided, whatever the caller's own environment says.
"""

from __future__ import annotations

import time
from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.exceptions import ObjectNotFound
from prefect.flow_runs import resume_flow_run

from remediation import approvers
from remediation.models import Approval, ApprovalAnswer, new_id
from remediation.providers.prefect_approvals import run_input
from remediation.store import PendingStep, Store

#: Exit codes of `remediate approve`.
COUNTED, REFUSED, NOT_DELIVERED, NO_VERDICT = 0, 1, 2, 3


class CannotAnswer(RuntimeError):
    """The answer could not be delivered: no such waiting step, or the Prefect API refused it."""


def waiting_step(flow_run_id: str, store: Store) -> PendingStep:
    try:
        UUID(flow_run_id)
    except ValueError:
        raise CannotAnswer(f"'{flow_run_id}' is not a flow run id (`remediate approvals` lists the waiting runs)") \
            from None
    steps = store.pending_steps(flow_run_id)
    if not steps:
        raise CannotAnswer(f"run {flow_run_id} is not waiting for an approval (`remediate approvals` lists those "
                           "that are)")
    return steps[-1]


def answer(flow_run_id: str, approver: str, approve: bool, reason: str, store: Store, *, code: str = "",
           wait_s: float = 30.0, poll_s: float = 0.25, slack: str = "") -> Approval | None:
    """Deliver one answer to the step the run waits on; the run's verdict on it, or None if none came in time."""
    step = waiting_step(flow_run_id, store)
    answer_id = new_id("ans")
    fields = run_input(approve=approve, approver=approver, reason=reason, code=code, step=step.step,
                       answer_id=answer_id, slack=slack)
    try:
        resume_flow_run(UUID(flow_run_id), run_input=fields)
    except ObjectNotFound:
        from prefect.settings import get_current_settings

        api = get_current_settings().api.url or "a temporary local API (PREFECT_API_URL is unset)"
        raise CannotAnswer(f"run {flow_run_id} is waiting in the store but unknown to the Prefect API at {api}: "
                           "point PREFECT_API_URL at the API serve uses") from None
    except Exception as exc:
        why = f"the Prefect API refused the answer: {type(exc).__name__}: {str(exc)[:300]}"
        if "Validation failed" in str(exc):
            # The server checked the form's limits (name length, code format) before the run saw anything: record
            # what it refused, so the attempt is on the timeline too.
            store.record_approval(step.incident_id, Approval(
                answer=ApprovalAnswer.REFUSED, approver=approvers.shown(approver, approvers.NAME_MAX), reason=why,
                answer_id=answer_id, via="form"), action_id=step.action_id)
        raise CannotAnswer(f"could not answer run {flow_run_id}: {why}") from exc
    return verdict(answer_id, flow_run_id, store, wait_s=wait_s, poll_s=poll_s)


def verdict(answer_id: str, flow_run_id: str, store: Store, *, wait_s: float, poll_s: float) -> Approval | None:
    """The run's recorded verdict on ``answer_id``; None if it has not judged it within ``wait_s`` or stopped."""
    deadline = time.monotonic() + wait_s
    while True:
        found = store.approval_answered(answer_id)
        if found is not None:
            return found
        if time.monotonic() >= deadline or _finished(flow_run_id):
            return store.approval_answered(answer_id)
        time.sleep(poll_s)


def describe(found: Approval | None, step: PendingStep | None = None) -> tuple[int, str]:
    """(exit code, one line) for what the run decided about an answer."""
    if found is None:
        return NO_VERDICT, ("answer delivered, but the run has not judged it yet: is its process alive? "
                            "(`remediate approvals` shows what still waits)")
    if found.answer is ApprovalAnswer.REFUSED:
        return REFUSED, f"refused by the run: {found.reason}"
    if found.answer is ApprovalAnswer.DENIED:
        return COUNTED, f"denied by {found.approver}: the step is not carried out, the runbook escalates"
    return COUNTED, f"approved by {found.approver}" + (f" ({found.reason})" if found.reason else "")


def paused_runs() -> list[FlowRun]:
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))))


def _finished(flow_run_id: str) -> bool:
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(flow_run_id))
    return run.state is not None and run.state.is_final()

