"""A ``remediate serve`` SIGKILLed while it executes a run: another serve sharing its store and Prefect API crashes
the run and closes its incident within a bounded time, whether the run was waiting for approval (Paused) or had just
been resumed by one (Running: Prefect's heartbeat automation has not armed yet, docs/reference/prefect.md §8).

Real processes: a Prefect server on PostgreSQL, the simulator (instances behind a load balancer) in this process, and
two ``run_stack`` subprocesses with short leases (6 s, renewed every 2 s, reconciling every 2 s). The rolling restart
is started through the first stack's warm executor and pauses for its one approval; the first stack is SIGKILLed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kamkmserve_sim import SimConfig, SimServer

from remediation import approval_client
from remediation.settings import Settings
from remediation.store import Store
from remediation.store.flow_runs import LeaseState
from tests.flows.restartkit import FAST_RESTART, FLEET
from tests.orchestration.orchkit import key, wait_for
from tests.orchestration.stackkit import Stack, replica_env, run_state, shared_prefect_server, with_api

DEPLOYMENT = "rolling-restart/rolling-restart"
LEASE_S, RENEW_S, RECONCILE_S = 6, 2, 2
#: Lease lapse + one reconcile interval, plus room for a loaded 2-core test host.
BOUND_S = LEASE_S + RECONCILE_S + 20

pytestmark = pytest.mark.prefect_server


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with shared_prefect_server(tmp_path_factory.mktemp("replica-prefect"), "remediate_replica") as url:
        yield url



@pytest.mark.parametrize("killed_while", ["paused for approval", "running right after the approval"])
def test_a_sigkilled_serve_s_run_is_crashed_and_its_incident_closed_by_a_live_replica_within_the_bound(
    api_url: str, tmp_path: Path, killed_while: str
) -> None:
    with SimServer(SimConfig(scenario="rolling-restart", rps=200.0, seed=5, fleet=FLEET)) as sim:
        env = replica_env(tmp_path, api_url, sim.url, lease_s=LEASE_S, renew_s=RENEW_S, reconcile_s=RECONCILE_S)
        doomed, replica = Stack(tmp_path, env, "doomed"), Stack(tmp_path, env, "replica")
        store = Store(Settings(home=tmp_path).resolved_database_url)
        try:
            assert DEPLOYMENT in doomed.ready()["loaded"]
            replica.ready()
            run_id = doomed.start(DEPLOYMENT, key("replica"), {"service": "kamkmserve", "mode": "auto",
                                                               "approval_timeout_s": 900, **FAST_RESTART})
            wait_for(lambda: (s := run_state(api_url, run_id)) is not None and s.name == "Paused", timeout_s=120,
                     interval_s=0.25, what="the run to pause for its approval")
            lease = store.flow_runs([run_id])[run_id]
            assert lease.holder is not None and lease.holder.endswith(f":{doomed.process.pid}")
            if killed_while.startswith("running"):
                with with_api(api_url):
                    approval_client.answer(run_id, "alice", True, "CHG-11", store, wait_s=0)
                wait_for(lambda: (s := run_state(api_url, run_id)) is not None and s.is_running(), timeout_s=60,
                         interval_s=0.1, what="the approved run to run again")

            doomed.sigkill()
            killed_at = time.monotonic()
            (incident,) = store.list_incidents()
            closed = wait_for(lambda: (i := store.get_incident(incident.id)) is not None and not i.is_open and i,
                              timeout_s=BOUND_S + 60, interval_s=0.25, what="the replica to close the incident")
            elapsed = time.monotonic() - killed_at
            print(f"killed while {killed_while}: incident closed {elapsed:.1f}s after the SIGKILL "
                  f"(lease {LEASE_S}s, reconcile every {RECONCILE_S}s)")
            assert elapsed <= BOUND_S, f"closed after {elapsed:.1f}s, bound {BOUND_S}s\n{replica.output()}"

            state = run_state(api_url, run_id)
            assert state.is_crashed() and "stopped renewing its lease" in (state.message or ""), state
            assert f":{replica.process.pid}" in (state.message or ""), "crashed by the live replica"
            assert closed.outcome.value == "escalated"
            report = store.get_report(incident.id)
            assert report is not None and report.escalation is not None
            assert "stopped renewing its lease" in report.escalation, report.escalation
            assert store.active_incidents("kamkmserve") == [], "the service is free for its next remediation"
            assert store.flow_runs([run_id])[run_id].lease(closed.closed_at or closed.opened_at) is \
                LeaseState.RECLAIMED
            assert f"reconciled incident {incident.id}" in replica.output()
        finally:
            store.dispose()
            doomed.stop()
            replica.stop()
