"""SIGKILL a ``remediate serve`` at each phase of an elevated-error-rate run; a live replica sharing its store and
Prefect API takes the incident over within two minutes: continued at recover by a new run when the rollback was
applied (verifying, or lifting maintenance), closed escalated naming the maintenance still on and its undo when it had
only contained (containing, or paused for the rollback's approval). In every case: no step applied twice, and no
containment left on without a record and an undo.

Real processes: a Prefect server on PostgreSQL, the simulator (bad release) in this process, and two ``run_stack``
subprocesses with short leases (6 s, renewed every 2 s, reconciling every 2 s). The run starts in the first stack's
warm executor (in its process, so the SIGKILL stops it dead); the continuation is a deployment run the replica's
runner picks up."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kamkmserve_sim import SimConfig, SimServer

from remediation import approval_client
from remediation.models import ActionState
from remediation.settings import Settings
from remediation.store import Store
from remediation.takeover import CONTINUED_EVENT
from tests.flows.flowkit import sim_state, wait_for_bad_release
from tests.orchestration.orchkit import key, wait_for
from tests.orchestration.stackkit import Stack, replica_env, run_state, shared_prefect_server, with_api

DEPLOYMENT = "elevated-error-rate/elevated-error-rate"
LEASE_S, RENEW_S, RECONCILE_S = 6, 2, 2
#: The issue's bound: a dead run's incident is taken over, and a continuation has finished, within two minutes.
BOUND_S = 120
PARAMETERS = {"service": "kamkmserve", "mode": "auto", "sample_interval_s": 0.3, "confirm_samples": 2,
              "min_records": 20, "verify_consecutive": 20, "verify_interval_s": 0.5, "verify_deadline_s": 60.0,
              "approval_timeout_s": 600}

pytestmark = pytest.mark.prefect_server


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with shared_prefect_server(tmp_path_factory.mktemp("takeover-prefect"), "remediate_takeover") as url:
        yield url



def _reached(store: Store, event: str) -> bool:
    return any(e.event.startswith(event) for i in store.list_incidents() for e in store.timeline(i.id))


@pytest.mark.parametrize(("killed_while", "event", "approve", "expected"), [
    ("containing", "plan enable_maintenance", False, "escalated"),
    ("paused for the rollback's approval", "waiting for approval of rollback", False, "escalated"),
    ("verifying the rollback", "verifying", True, "recovered"),
    # Killed mid-lift (one of the three prefixes lifted), the read-back finds it half in effect: the continuation
    # then escalates, naming it, instead of guessing. Killed before or after the calls, it recovers.
    ("lifting maintenance (the undo)", "plan disable_maintenance", True, "recovered or half-done"),
])
def test_a_sigkilled_run_is_taken_over_by_a_live_replica_within_two_minutes_never_applying_a_step_twice(
    api_url: str, tmp_path: Path, killed_while: str, event: str, approve: bool, expected: str
) -> None:
    with SimServer(SimConfig(scenario="bad-release", rps=200.0, onset_s=0.2, seed=7)) as sim:
        wait_for_bad_release(sim)
        env = replica_env(tmp_path, api_url, sim.url, lease_s=LEASE_S, renew_s=RENEW_S, reconcile_s=RECONCILE_S)
        doomed, replica = Stack(tmp_path, env, "doomed"), Stack(tmp_path, env, "replica")
        store = Store(Settings(home=tmp_path).resolved_database_url)
        try:
            assert DEPLOYMENT in doomed.ready()["loaded"]
            assert DEPLOYMENT in replica.ready()["loaded"]
            run_id = doomed.start(DEPLOYMENT, key("takeover"), PARAMETERS)
            if approve:
                wait_for(lambda: (s := run_state(api_url, run_id)) is not None and s.name == "Paused", timeout_s=120,
                         interval_s=0.25, what="the run to pause for the rollback's approval")
                with with_api(api_url):
                    approval_client.answer(run_id, "alice", True, "CHG-14", store, wait_s=0)
            wait_for(lambda: _reached(store, event), timeout_s=120, interval_s=0.02, what=f"the run at {event!r}")
            lease = store.flow_runs([run_id])[run_id]  # the process about to be killed is the one executing the run
            assert lease.holder is not None and lease.holder.endswith(f":{doomed.process.pid}"), lease.holder
            doomed.sigkill()
            killed_at = time.monotonic()

            (incident,) = store.list_incidents()
            closed = wait_for(lambda: (i := store.get_incident(incident.id)) is not None and not i.is_open and i,
                              timeout_s=BOUND_S + 60, interval_s=0.5, what="the incident to be taken over and closed")
            elapsed = time.monotonic() - killed_at
            print(f"killed while {killed_while}: incident {closed.outcome.value} {elapsed:.1f}s after the SIGKILL")
            assert elapsed <= BOUND_S, f"closed after {elapsed:.1f}s\n{replica.output()[-5000:]}"
            report = store.get_report(incident.id)
            assert report is not None
            continued = expected != "escalated"
            if expected == "recovered or half-done" and closed.outcome.value == "escalated":
                assert report.escalation is not None and "outcome unknown" in report.escalation, report.escalation
                assert "undo: enable_maintenance" in report.escalation, report.escalation
                expected = "escalated"
            assert closed.outcome.value == expected.split()[0], f"{report.escalation}\n{replica.output()[-5000:]}"
            expected = closed.outcome.value

            rows = store.actions(incident.id)
            applied = [r.plan.model_dump_json(exclude={"reason"}) for r in rows if r.state is ActionState.APPLIED]
            assert len(applied) == len(set(applied)), f"a step was applied twice: {applied}"
            for half_done in (r for r in rows if r.state is ActionState.INTENT):  # named for a person, with its undo
                assert not continued, "a continuation reads every half-done step back and settles it"
                assert report.escalation is not None and half_done.id in report.escalation
            timeline = [e.event for e in store.timeline(incident.id)]
            state = sim_state(sim)
            assert (CONTINUED_EVENT in timeline) is continued and (closed.flow_run_id != run_id) is continued
            if expected == "recovered":
                assert state["maintenance"] == [], "the continuation lifted the maintenance"
            else:
                assert report.escalation is not None
                if state["maintenance"]:  # left on for a person: named, with its undo
                    assert "disable_maintenance" in report.escalation, report.escalation
            assert run_state(api_url, run_id).is_crashed()
        finally:
            store.dispose()
            doomed.stop()
            replica.stop()
