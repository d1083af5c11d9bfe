"""The real approval path: the run pauses in Prefect and is answered from another thread via the CLI's code."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client

from flows.elevated_error_rate import elevated_error_rate
from remediation import approval_client, runtime
from remediation.providers.prefect_approvals import PrefectApprovals
from remediation.sim import SimServer
from tests.flows.flowkit import FAST, sim_state, wait_for_bad_release

pytestmark = pytest.mark.usefixtures("prefect_api")


def answer_pauses(responses: list[Callable[[str], bool]]) -> threading.Thread:
    """From another thread, hand each new pause to the next response in turn.

    A response returns False when the pause is still open afterwards (refused before resuming), so the
    same pause is offered to the next response.
    """

    def loop() -> None:
        pending = list(responses)
        answered: set[str] = set()
        deadline = time.monotonic() + 60
        while pending and time.monotonic() < deadline:
            for run in approval_client.paused_runs():
                key = f"{run.id}:{run.state.state_details.pause_key if run.state else ''}"
                if key not in answered:
                    if pending.pop(0)(str(run.id)):
                        answered.add(key)
                    break
            time.sleep(0.2)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def like_the_cli(p: runtime.Providers, name: str, log: list[str]) -> Callable[[str], bool]:
    """Answer exactly like `remediate approve RUN --as NAME` does."""

    def respond(run_id: str) -> bool:
        try:
            approval_client.answer(run_id, name, True, "from test", p.settings, p.store)
        except approval_client.NotAnApprover:
            log.append(f"refused:{name}")
            return False  # refused at the CLI: the run is still paused
        log.append(f"answered:{name}")
        return True

    return respond


def like_the_ui(run_input: dict[str, object]) -> Callable[[str], bool]:
    """Resume with raw input, as the Prefect UI's Resume form does (no allow-list check first)."""
    from prefect.flow_runs import resume_flow_run

    def respond(run_id: str) -> bool:
        resume_flow_run(UUID(run_id), run_input=run_input)
        return True

    return respond


def final_state(run_id: str) -> str:
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(run_id))
    assert run.state is not None
    return run.state.type.value


async def test_real_pause_is_resumed_from_another_thread_and_the_rollback_applies(
    sim: Callable[..., SimServer], providers: Callable[..., runtime.Providers]
) -> None:
    server = sim("bad-release")
    wait_for_bad_release(server)
    p = providers(server.url, approvals=PrefectApprovals(poll_interval_s=1))
    log: list[str] = []
    resumer = answer_pauses([like_the_cli(p, "mallory", log), like_the_cli(p, "alice", log)])
    with runtime.use(p):
        report = await elevated_error_rate(**FAST)
    resumer.join(timeout=5)
    assert log == ["refused:mallory", "answered:alice"]
    assert report["outcome"] == "recovered"
    assert sim_state(server)["current_release"]["version"] == "v1.4.2"
    approvals = [(a.answer.value, a.approver) for a in p.store.approvals(report["incident_id"])]
    assert approvals == [("refused", "mallory"), ("approved", "alice")]
    assert final_state(report["flow_run_id"]) == "COMPLETED"


async def test_real_pause_timeout_denies_and_the_run_still_completes_with_its_report(
    sim: Callable[..., SimServer], providers: Callable[..., runtime.Providers]
) -> None:
    server = sim("bad-release")
    wait_for_bad_release(server)
    p = providers(server.url, approvals=PrefectApprovals(poll_interval_s=1))
    with runtime.use(p):
        report = await elevated_error_rate(**FAST, approval_timeout_s=5)
    assert report["outcome"] == "denied"
    rollback = next(a for a in report["actions"] if a["kind"] == "rollback")
    assert rollback["approval"] == "timeout" and not rollback["applied"]
    assert sim_state(server)["current_release"]["version"] != "v1.4.2"
    assert final_state(report["flow_run_id"]) == "COMPLETED"


async def test_an_unlisted_name_typed_into_the_ui_form_is_refused_and_the_run_pauses_again(
    sim: Callable[..., SimServer], providers: Callable[..., runtime.Providers]
) -> None:
    server = sim("bad-release")
    wait_for_bad_release(server)
    p = providers(server.url, approvals=PrefectApprovals(poll_interval_s=1))
    resumer = answer_pauses([like_the_ui({"approve": True, "approver": "mallory", "reason": "trust me"}),
                             like_the_ui({"approve": True, "approver": "bob", "reason": "INC-7"})])
    with runtime.use(p):
        report = await elevated_error_rate(**FAST)
    resumer.join(timeout=5)
    approvals = [(a.answer.value, a.approver) for a in p.store.approvals(report["incident_id"])]
    assert approvals == [("refused", "mallory"), ("approved", "bob")]
    assert report["outcome"] == "recovered"
    assert sim_state(server)["current_release"]["version"] == "v1.4.2"


def bare_resume(log: list[str]) -> Callable[[str], bool]:
    """Click Resume with an empty form (or call the API without input): no name, no reason."""
    from prefect.flow_runs import resume_flow_run

    def respond(run_id: str) -> bool:
        try:
            resume_flow_run(UUID(run_id))
        except RuntimeError as exc:  # the server rejects it against the stored form schema
            log.append(f"rejected: {exc}")
            return False
        log.append("accepted")
        return True

    return respond


async def test_a_bare_resume_without_name_and_reason_is_rejected_and_the_run_stays_paused(
    sim: Callable[..., SimServer], providers: Callable[..., runtime.Providers]
) -> None:
    server = sim("bad-release")
    wait_for_bad_release(server)
    p = providers(server.url, approvals=PrefectApprovals(poll_interval_s=1))
    log: list[str] = []
    resumer = answer_pauses([bare_resume(log), like_the_ui({"approve": True, "approver": "bob", "reason": "INC-8"})])
    with runtime.use(p):
        report = await elevated_error_rate(**FAST)
    resumer.join(timeout=5)
    assert len(log) == 1 and log[0].startswith("rejected:"), log
    assert "'approver' is a required property" in log[0]
    # Nothing was recorded for the bare click: the only answer is bob's, and the rollback went ahead.
    approvals = [(a.answer.value, a.approver) for a in p.store.approvals(report["incident_id"])]
    assert approvals == [("approved", "bob")]
    assert report["outcome"] == "recovered"
