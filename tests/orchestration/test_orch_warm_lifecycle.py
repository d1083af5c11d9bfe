"""The warm executor's own duties: cancellation from Prefect, crashing runs at shutdown, the flow wrapper."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from remediation.orchestration.warm import WarmExecutor, cancellable
from tests.orchestration.orch_flows import records, tiny
from tests.orchestration.orchkit import history, key, read_run, wait_final, wait_for, wait_state

pytestmark = pytest.mark.prefect_server


def _cancel(run_id: str) -> None:
    """What the UI's Cancel button does to a running run."""
    from prefect import get_client
    from prefect.states import Cancelling

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run_id, Cancelling(), force=True)


async def test_cancelling_a_warm_run_stops_it_and_ends_cancelled(executor: WarmExecutor, tmp_path: Path) -> None:
    record = tmp_path / "runs.jsonl"
    run_id = await executor.start("orch-tiny/tiny", {"label": "long", "sleep_s": 60, "record_to": str(record)},
                                  key("cancel"))
    wait_state(run_id, lambda s: s.is_running())
    t0 = time.monotonic()
    _cancel(run_id)
    run = wait_final(run_id, timeout_s=15)
    assert time.monotonic() - t0 < 5  # watcher poll 0.2 s, not the 60 s body
    assert run.state.is_cancelled()
    assert history(run_id)[-3:] == ["Running", "Cancelling", "Cancelled"]  # no detour through Crashed
    assert [r["event"] for r in records(record)] == ["start"]  # the body stopped at its await
    wait_for(lambda: executor.executing() == [], 5, what="the thread to finish")


async def test_shutdown_marks_executing_runs_crashed(tiny_deployment: str, tmp_path: Path) -> None:
    record = tmp_path / "runs.jsonl"
    warm = WarmExecutor({tiny_deployment: tiny}, poll_s=0.2).open()
    run_id = await warm.start(tiny_deployment, {"label": "doomed", "sleep_s": 60, "record_to": str(record)},
                              key("crash"))
    wait_state(run_id, lambda s: s.is_running())
    crashed = warm.shutdown(grace_s=5)
    assert [str(r) for r in crashed] == [run_id]
    run = read_run(run_id)
    assert run.state.is_crashed()
    assert history(run_id)[-2:] == ["Running", "Crashed"]
    assert not warm.healthy()


def test_cancellable_copy_keeps_the_runbooks_parameter_handling() -> None:
    """The wrapper must not break Prefect's validation of the runbook's (string) annotations."""
    from flows.elevated_error_rate import elevated_error_rate
    from remediation.models import Mode, Severity

    wrapped = cancellable(elevated_error_rate)
    assert wrapped.name == elevated_error_rate.name
    assert wrapped.isasync
    assert wrapped.parameters == elevated_error_rate.parameters
    validated = wrapped.validate_parameters({"service": "kamkmserve", "mode": "auto", "severity": "sev1"})
    assert validated["mode"] is Mode.AUTO
    assert validated["severity"] is Severity.SEV1


async def test_shutdown_lets_runs_finish_within_the_drain(tiny_deployment: str, tmp_path: Path) -> None:
    warm = WarmExecutor({tiny_deployment: tiny}, poll_s=0.2).open()
    run_id = await warm.start(tiny_deployment, {"label": "closing", "sleep_s": 1.0}, key("drain"))
    wait_state(run_id, lambda s: s.is_running())
    assert warm.shutdown(grace_s=5, drain_s=20) == []
    assert read_run(run_id).state.is_completed()
