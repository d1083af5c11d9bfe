"""Answering a paused run from outside it: the path the CLI, the demo and (later) chat and intake use."""

from __future__ import annotations

from uuid import UUID

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterState, FlowRunFilterStateType
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.flow_runs import resume_flow_run

from remediation.models import Approval, ApprovalAnswer
from remediation.settings import Settings
from remediation.store import Store


class NotAnApprover(PermissionError):
    pass


class CannotAnswer(RuntimeError):
    pass


def answer(flow_run_id: str, approver: str, approve: bool, reason: str, settings: Settings,
           store: Store | None = None) -> None:
    """Resume a paused run with an answer. A name off the allow-list is refused here and recorded."""
    name = approver.strip()
    if name not in settings.approvers:
        if store is not None:
            _record_refusal(store, flow_run_id, name, reason)
        raise NotAnApprover(
            f"'{name}' is not on REMEDIATE_APPROVERS ({', '.join(settings.approvers) or 'empty'}); refused and recorded"
        )
    try:
        run_id = UUID(flow_run_id)
    except ValueError:
        raise CannotAnswer(f"'{flow_run_id}' is not a flow run id") from None
    try:
        resume_flow_run(run_id, run_input={"approve": approve, "approver": name, "reason": reason})
    except Exception as exc:
        raise CannotAnswer(f"could not answer run {flow_run_id}: {type(exc).__name__}: {exc}") from exc


def paused_runs() -> list[FlowRun]:
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(flow_run_filter=FlowRunFilter(
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.PAUSED]))))


def _record_refusal(store: Store, flow_run_id: str, name: str, reason: str) -> None:
    incident = store.incident_for_flow_run(flow_run_id)
    if incident is not None:
        store.record_approval(incident.id, Approval(
            answer=ApprovalAnswer.REFUSED, approver=name,
            reason=f"'{name}' is not on the approver list; {reason}".strip("; ")))
