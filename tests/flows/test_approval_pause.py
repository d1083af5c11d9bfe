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


def answer_when_paused(p: runtime.Providers, answers: list[tuple[str, bool]], outcome: list[str]) -> threading.Thread:
    """From another thread, answer each pause in turn exactly like `remediate approve` does."""

    def loop() -> None:
        pending = list(answers)
        answered: set[str] = set()
        deadline = time.monotonic() + 60
        while pending and time.monotonic() < deadline:
            for run in approval_client.paused_runs():
                key = f"{run.id}:{run.state.state_details.pause_key if run.state else ''}"
                if key in answered:
                    continue
                answered.add(key)
                name, approve = pending.pop(0)
                try:
                    approval_client.answer(str(run.id), name, approve, "from test", p.settings, p.store)
                    outcome.append(f"answered:{name}")
                except approval_client.NotAnApprover:
                    outcome.append(f"refused:{name}")
                    # refused at the CLI: the run is still paused; answer it again with the next name
                    answered.discard(key)
                break
            time.sleep(0.2)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


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
    resumer = answer_when_paused(p, [("mallory", True), ("alice", True)], log)
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


def resume_like_the_ui(answers: list[dict[str, object]]) -> threading.Thread:
    """Resume each pause with raw input, as the Prefect UI's Resume form does (no allow-list check first)."""
    from prefect.flow_runs import resume_flow_run

    def loop() -> None:
        pending = list(answers)
        answered: set[str] = set()
        deadline = time.monotonic() + 60
        while pending and time.monotonic() < deadline:
            for run in approval_client.paused_runs():
                key = f"{run.id}:{run.state.state_details.pause_key if run.state else ''}"
                if key not in answered:
                    answered.add(key)
                    resume_flow_run(run.id, run_input=pending.pop(0))
                    break
            time.sleep(0.2)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


async def test_an_unlisted_name_typed_into_the_ui_form_is_refused_and_the_run_pauses_again(
    sim: Callable[..., SimServer], providers: Callable[..., runtime.Providers]
) -> None:
    server = sim("bad-release")
    wait_for_bad_release(server)
    p = providers(server.url, approvals=PrefectApprovals(poll_interval_s=1))
    resumer = resume_like_the_ui([{"approve": True, "approver": "mallory", "reason": "trust me"},
                                  {"approve": True, "approver": "bob", "reason": "INC-7"}])
    with runtime.use(p):
        report = await elevated_error_rate(**FAST)
    resumer.join(timeout=5)
    approvals = [(a.answer.value, a.approver) for a in p.store.approvals(report["incident_id"])]
    assert approvals == [("refused", "mallory"), ("approved", "bob")]
    assert report["outcome"] == "recovered"
    assert sim_state(server)["current_release"]["version"] == "v1.4.2"
