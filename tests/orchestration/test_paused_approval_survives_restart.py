"""A run paused for approval in ``remediate serve`` survives SIGTERM of that process and is answered after a restart.

Real processes and signals: a Prefect server, the simulator (instances behind a load balancer) in this process,
and ``run_stack`` (``tests.orchestration.orch_stack_main``) started twice as a subprocess. A production rolling restart
is started through the warm executor and pauses for its one approval. SIGTERM: the stack exits 0 and the run is left
``Suspended`` (not ``Crashed``), nothing drained or restarted. The second stack comes up, the approval is answered
with ``remediate approve``'s path, and the second stack's runner runs the flow again from the top: it adopts the
incident, finds the answer under the same pause key, and restarts every instance (remediation.orchestration.resumable).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from kamkmserve_sim import SimConfig, SimServer

from remediation import approval_client
from remediation.settings import Settings
from remediation.store import Store
from tests.flows.restartkit import FAST_RESTART, FLEET, generations, lb_states
from tests.orchestration.orchkit import history, key, wait_for
from tests.orchestration.stackkit import Stack, shared_prefect_server, with_api

DEPLOYMENT = "rolling-restart/rolling-restart"

pytestmark = pytest.mark.prefect_server


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with shared_prefect_server(tmp_path_factory.mktemp("resume-prefect"), "remediate_resume") as url:
        yield url


def test_a_paused_approval_survives_a_restart_of_the_serving_process_and_is_answered_after_it(
    api_url: str, tmp_path: Path
) -> None:
    from prefect import get_client

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "REMEDIATE_", "SENTRY_"))}
    with SimServer(SimConfig(scenario="rolling-restart", rps=200.0, seed=5, fleet=FLEET)) as sim:
        env.update({"PREFECT_API_URL": api_url, "PREFECT_HOME": str(tmp_path / "prefect-home"),
                    "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "REMEDIATE_HOME": str(tmp_path),
                    "REMEDIATE_APP_URL": sim.url, "REMEDIATE_PLATFORM": "sim", "REMEDIATE_SIM_URL": sim.url,
                    "REMEDIATE_APPROVERS": "alice", "REMEDIATE_MODE": "auto",
                    "REMEDIATE_APPROVAL_POLL_S": "1", "REMEDIATE_METRICS_BUDGET_PER_MIN": "100"})
        first = Stack(tmp_path, env, "first")
        second: Stack | None = None
        try:
            health = first.ready()
            assert DEPLOYMENT in health["loaded"], "the warm executor runs the rolling restart"
            run_id = first.start(DEPLOYMENT, key("resume"),
                                 {"service": "kamkmserve", "mode": "auto", "approval_timeout_s": 900, **FAST_RESTART})
            with with_api(api_url), get_client(sync_client=True) as client:
                paused = wait_for(lambda: (r := client.read_flow_run(run_id)).state and r.state.name == "Paused" and r,
                                  timeout_s=90, interval_s=0.25, what="the run to pause for its approval")
            pause_key = paused.state.state_details.pause_key

            assert first.terminate() == 0, first.output()
            assert "suspended 1 run(s) waiting for approval" in first.output()
            with with_api(api_url), get_client(sync_client=True) as client:
                parked = client.read_flow_run(run_id)
            assert parked.state.type.value == "PAUSED" and parked.state.name == "Suspended", parked.state
            assert parked.state.state_details.pause_key == pause_key and parked.state.state_details.pause_reschedule
            assert generations(sim) == {"i-01": 0, "i-02": 0, "i-03": 0}, "nothing restarted before the answer"
            assert lb_states(sim) == {"i-01": "healthy", "i-02": "healthy", "i-03": "healthy"}

            second = Stack(tmp_path, env, "second")
            second.ready()
            store = Store(Settings(home=tmp_path).resolved_database_url)
            with with_api(api_url):
                # The run is suspended, not executing: its verdict comes once the restarted serve runs it again.
                approval_client.answer(str(run_id), "alice", True, "CHG-9 after the restart", store, wait_s=0)
                with get_client(sync_client=True) as client:
                    done = wait_for(lambda: (r := client.read_flow_run(run_id)).state and r.state.is_final() and r,
                                    timeout_s=180, interval_s=0.5, what="the resumed run to finish")
                states = history(run_id)
            assert done.state.is_completed(), f"{done.state}\n{second.output()}"
            assert {"Paused", "Suspended", "Resuming", "Recovered"} <= set(states), states
            assert states.count("Running") >= 2, f"executed again from the top after the answer: {states}"

            (incident,) = store.list_incidents()
            assert incident.flow_run_id == run_id, "the second execution adopted the incident of the first"
            report = store.get_report(incident.id)
            assert report is not None and report.outcome.value == "recovered", report and report.escalation
            assert [(a.answer.value, a.approver) for a in store.approvals(incident.id)] == [("approved", "alice")]
            assert generations(sim) == {"i-01": 1, "i-02": 1, "i-03": 1}
            assert lb_states(sim) == {"i-01": "healthy", "i-02": "healthy", "i-03": "healthy"}
            store.dispose()
            assert second.terminate() == 0, second.output()
        finally:
            first.kill()
            if second is not None:
                second.kill()
