"""A *served* run paused for approval survives SIGTERM of ``remediate serve`` and is answered after a restart.

The warm path's test (test_paused_approval_survives_restart) covers runs the warm executor executes; this one covers
runs Prefect's runner executes as child processes (a UI custom run, the weekly drill, an event-triggered run), which
``Runner.astop`` would kill and force ``Cancelled``. Real processes and signals: a Prefect server on PostgreSQL, the
simulator in this process, ``run_stack`` (``tests.orchestration.orch_stack_main``) started twice as a subprocess. The
run is created from the deployment through the API, as the UI's Run button does, so the first stack's runner starts
it in a child process. SIGTERM: the child parks itself when serve asks (remediation.orchestration.resumable, 5-7), the
stack exits 0 and the run is ``Suspended`` with nothing restarted. After the answer the second stack's runner runs it
again from the top; it finds the answer under the same pause key and restarts every instance once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest

from remediation import approval_client
from remediation.orchestration.resumable import PARK_LABEL
from remediation.settings import Settings
from remediation.store import Store
from tests.flows.restartkit import FAST_RESTART, generations, lb_states
from tests.orchestration.orchkit import history, wait_for
from tests.orchestration.stackkit import (
    Stack,
    replica_env,
    rolling_restart_sim,
    run_state,
    shared_prefect_server,
    with_api,
)

DEPLOYMENT = "rolling-restart/rolling-restart"

pytestmark = [pytest.mark.prefect_server, pytest.mark.postgres]


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with shared_prefect_server(tmp_path_factory.mktemp("served-resume-prefect"), "remediate_served_resume") as url:
        yield url


def test_a_served_run_paused_for_approval_is_suspended_at_shutdown_and_runs_again_after_the_answer(
    api_url: str, tmp_path: Path
) -> None:
    from prefect import get_client

    with rolling_restart_sim() as sim:
        env = replica_env(tmp_path, api_url, sim.url, lease_s=60, renew_s=20, reconcile_s=30)
        first = Stack(tmp_path, env, "first")
        second: Stack | None = None
        try:
            first.ready()
            with with_api(api_url), get_client(sync_client=True) as client:
                deployment = client.read_deployment_by_name(DEPLOYMENT)
                # What the UI's "Run" does: a Scheduled run of the deployment, for the served runner to execute.
                run_id = str(client.create_flow_run_from_deployment(deployment.id, parameters={
                    "service": "kamkmserve", "mode": "auto", "approval_timeout_s": 900, **FAST_RESTART}).id)
            paused = wait_for(lambda: (s := run_state(api_url, run_id)) is not None and s.name == "Paused" and s,
                              timeout_s=120, interval_s=0.25, what="the served run to pause for its approval")
            pause_key = paused.state_details.pause_key

            stopping = time.monotonic()
            assert first.terminate() == 0, first.output()
            print(f"serve stopped {time.monotonic() - stopping:.1f}s after SIGTERM")
            assert "suspended 1 served run(s) waiting for approval" in first.output(), first.output()[-4000:]
            with with_api(api_url), get_client(sync_client=True) as client:
                parked = client.read_flow_run(UUID(run_id))
            assert parked.state.name == "Suspended", f"{parked.state}\n{first.output()[-4000:]}"
            assert parked.state.state_details.pause_key == pause_key and parked.state.state_details.pause_reschedule
            assert parked.labels.get(PARK_LABEL) == pause_key
            assert generations(sim) == {"i-01": 0, "i-02": 0, "i-03": 0}, "nothing restarted before the answer"

            second = Stack(tmp_path, env, "second")
            second.ready()
            store = Store(Settings(home=tmp_path).resolved_database_url)
            with with_api(api_url):
                approval_client.answer(run_id, "alice", True, "CHG-17 after the restart", store, wait_s=0)
            done = wait_for(lambda: (s := run_state(api_url, run_id)) is not None and s.is_final() and s,
                            timeout_s=180, interval_s=0.5, what="the re-run to finish")
            with with_api(api_url):
                states = history(run_id)
            assert done.is_completed(), f"{done}\n{second.output()[-4000:]}"
            assert "Cancelled" not in states and "Crashed" not in states, states
            assert {"Paused", "Suspended", "Resuming"} <= set(states) and states.count("Running") >= 2, states

            (incident,) = store.list_incidents()
            assert incident.flow_run_id == run_id, "the second execution adopted the incident of the first"
            report = store.get_report(incident.id)
            assert report is not None and report.outcome.value == "recovered", report and report.escalation
            assert [(a.answer.value, a.approver) for a in store.approvals(incident.id)] == [("approved", "alice")]
            assert generations(sim) == {"i-01": 1, "i-02": 1, "i-03": 1}, "each instance restarted exactly once"
            assert lb_states(sim) == {"i-01": "healthy", "i-02": "healthy", "i-03": "healthy"}
            store.dispose()
            assert second.terminate() == 0, second.output()
        finally:
            first.kill()
            if second is not None:
                second.kill()
