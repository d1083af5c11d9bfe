"""Two ``remediate serve`` replicas (processes) on one PostgreSQL store and one Prefect API act once per incident.

Real processes: a Prefect server on its own PostgreSQL database, a throwaway PostgreSQL store database, the simulator
in this process, and two ``remediate serve`` subprocesses with the real alert receiver. Every Alertmanager delivery of
two groups is posted to *both* receivers at once, twice over: intake dedupes across the replicas (one incident per
group key) and the two warm executors start exactly one flow run per incident (the incident is the run's idempotency
key; one claim wins), and each deployment has one trigger automation although both replicas registered it at once.
Then the event path (remediation.orchestration.events): the ``remediation.alert.fired`` event re-sent with its id
(derived from the incident) starts no second run; one with another id, emitted once the first run holds its
incident, creates a second run that stops at its start (``refuse_duplicate``: ``DuplicateRun``) before it notes or
changes anything.
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from remediation import approval_client
from remediation.orchestration.events import alert_event
from remediation.orchestration.triggers import owner_of
from remediation.store import Store
from remediation.store.flow_runs import LeaseState
from tests.helpers import local_http
from tests.helpers.services import pg_admin_url, postgres_reachable, require_service, temporary_postgres_database
from tests.orchestration.orchkit import history, wait_for
from tests.orchestration.stackkit import (
    Stack,
    replica_env,
    rolling_restart_sim,
    run_state,
    shared_prefect_server,
    with_api,
)

TOKEN = "replicas-intake-token"
TRIGGER_SUFFIX = ": alert fired"  # remediation.orchestration.events.trigger_spec's name
#: Two Alertmanager groups, each routed to its own runbook by its ``runbook`` label.
GROUPS = {"rolling-restart": "KamkmserveRestartNeeded", "elevated-error-rate": "KamkmserveHigh5xxRate"}
#: Each group's service. Not one for both: policy lets one remediation at a time act on a service, so whichever run
#: came second would escalate instead of pausing ("1 other run(s) active"), depending on which replica was quicker.
SERVICES = {"rolling-restart": "kamkmserve", "elevated-error-rate": "kamkmserve-edge"}

pytestmark = [pytest.mark.prefect_server, pytest.mark.postgres]


def triggers_per_deployment(api_url: str) -> dict[str, int]:
    """Deployment name -> how many alert-trigger automations it owns."""
    from prefect import get_client

    with with_api(api_url), get_client(sync_client=True) as client:
        return {d.name: sum(a.name.endswith(TRIGGER_SUFFIX)
                            for a in client.read_resource_related_automations(owner_of(d.id)))
                for d in client.read_deployments()}


@pytest.fixture(scope="module")
def api_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with shared_prefect_server(tmp_path_factory.mktemp("replicas-prefect"), "remediate_replicas_api") as url:
        yield url


@pytest.fixture
def store_url() -> Iterator[str]:
    admin_url = pg_admin_url()
    reachable, why = postgres_reachable(admin_url)
    require_service("PostgreSQL", reachable, why)
    with temporary_postgres_database(admin_url, prefix="remediate_replicas_store") as url:
        Store(url).migrate()  # once, here: two serves migrating one empty database at once would race
        yield url


def delivery(runbook: str, alertname: str) -> dict[str, Any]:
    """An Alertmanager webhook (version 4) for one group of two firing alerts."""
    service = SERVICES[runbook]
    labels = {"alertname": alertname, "runbook": runbook, "service": service, "severity": "warning"}
    alerts = [{"status": "firing", "labels": {**labels, "instance": instance}, "annotations": {},
               "startsAt": datetime.now(UTC).isoformat(), "endsAt": "0001-01-01T00:00:00Z",
               "generatorURL": "http://prometheus.test/graph", "fingerprint": uuid.uuid4().hex[:16]}
              for instance in ("web-1", "web-2")]
    return {"receiver": "remediation", "status": "firing", "alerts": alerts,
            "groupLabels": {"alertname": alertname, "service": service}, "commonLabels": labels,
            "commonAnnotations": {}, "externalURL": "http://alertmanager.test", "version": "4",
            "groupKey": f'{{}}:{{alertname="{alertname}", service="{service}"}}', "truncatedAlerts": 0}


def emit(api_url: str, runbook: str, incident_id: str, event_id: str | None = None) -> None:
    """The documented event: its id derived from the incident, unless ``event_id`` (another emitter's event)."""
    spec = alert_event(runbook, service="kamkmserve", severity="sev3", alert_name="RestartNeeded",
                       incident_id=incident_id)
    event = {**spec, "occurred": datetime.now(UTC).isoformat(), "id": event_id or spec["id"]}
    local_http.post(f"{api_url}/events", json=[event], timeout=10).raise_for_status()


def paused(api_url: str, run_id: str) -> bool:
    """The run waits in its approval pause; a run that ended instead fails the test at once, saying how it ended."""
    state = run_state(api_url, run_id)
    if state is not None and state.is_final():
        raise AssertionError(f"run {run_id} ended {state.name} instead of pausing: {state.message}")
    return state is not None and state.name == "Paused"


def runs_for(api_url: str, incident_id: str) -> list[Any]:
    from prefect import get_client

    with with_api(api_url), get_client(sync_client=True) as client:
        return [r for r in client.read_flow_runs(limit=200) if r.parameters.get("incident_id") == incident_id]


def test_two_replicas_dedupe_deliveries_start_one_run_per_incident_and_a_duplicated_event_does_nothing(
    api_url: str, store_url: str, tmp_path: Path
) -> None:
    with rolling_restart_sim() as sim:
        env = {**replica_env(tmp_path, api_url, sim.url, lease_s=30, renew_s=5, reconcile_s=30),
               "REMEDIATE_DATABASE_URL": store_url, "REMEDIATE_INTAKE_TOKEN": TOKEN,
               "REMEDIATE_VERIFY_INTERVAL_S": "1"}
        replicas = [Stack(tmp_path, env, "replica-a", receiver=True), Stack(tmp_path, env, "replica-b", receiver=True)]
        store = Store(store_url)
        try:
            started = time.monotonic()
            for replica in replicas:
                replica.ready()
            print(f"both replicas ready after {time.monotonic() - started:.1f}s")

            # Every delivery to both receivers at once, twice over (Alertmanager repeats; a load balancer or an HA
            # Alertmanager pair sends the same group to either replica).
            bodies = [delivery(runbook, name) for runbook, name in GROUPS.items()]
            posts = [(r.url, copy.deepcopy(b)) for _ in range(2) for b in bodies for r in replicas]
            with ThreadPoolExecutor(len(posts)) as pool:
                answers = list(pool.map(lambda p: local_http.post(
                    f"{p[0]}/alerts/alertmanager", json=p[1], timeout=30,
                    headers={"Authorization": f"Bearer {TOKEN}"}), posts))
            assert all(a.status_code == 200 for a in answers), [(a.status_code, a.text) for a in answers]

            incidents = {i.runbook: i for i in store.list_incidents()}
            assert sorted(incidents) == sorted(GROUPS), "one incident per group key, across both replicas"
            for runbook, incident in incidents.items():
                assert {a.name for a in store.incident_alerts(incident.id)} == {GROUPS[runbook]}
                runs = wait_for(lambda i=incident: runs_for(api_url, i.id), timeout_s=30, interval_s=0.2,
                                what=f"the run of {runbook}")
                assert len(runs) == 1, f"exactly one run per incident: {[(r.id, r.state_name) for r in runs]}"
                assert store.get_incident(incident.id).flow_run_id == str(runs[0].id)  # type: ignore[union-attr]
            restart = incidents["rolling-restart"]
            restart_run = str(runs_for(api_url, restart.id)[0].id)
            wait_for(lambda: paused(api_url, restart_run), timeout_s=120, interval_s=0.25,
                     what="the rolling restart to pause for its approval")
            with with_api(api_url):
                assert history(restart_run).count("Running") == 1, "executed by one replica only"
                # Denied, so that the service is free and the event's run below gets as far as its own approval.
                approval_client.answer(restart_run, "alice", False, "not now", store, wait_s=0)
            wait_for(lambda: not store.get_incident(restart.id).is_open,  # type: ignore[union-attr]
                     timeout_s=60, interval_s=0.2, what="the denied restart to close its incident")
            print(f"intake part done after {time.monotonic() - started:.1f}s")

            # The event path: a new incident, started by an event; the same event again while its run holds it
            # (waiting for its approval, lease held).
            incident_id = f"inc-evt{uuid.uuid4().hex[:8]}"
            emit(api_url, "rolling-restart", incident_id)
            (first,) = wait_for(lambda: runs_for(api_url, incident_id), timeout_s=30, interval_s=0.2,
                                what="the event's run")
            first_id = str(first.id)
            wait_for(lambda: paused(api_url, first_id), timeout_s=120, interval_s=0.25,
                     what="the event's run to pause for its approval")
            assert store.get_incident(incident_id).flow_run_id == first_id  # type: ignore[union-attr]
            assert store.flow_runs([first_id])[first_id].lease(datetime.now(UTC)) is LeaseState.HELD
            emit(api_url, "rolling-restart", incident_id)  # the same alert re-sent: the same id, ignored by Prefect
            emit(api_url, "rolling-restart", incident_id, event_id=str(uuid.uuid4()))  # another emitter's, for it
            second = wait_for(lambda: [r for r in runs_for(api_url, incident_id) if str(r.id) != first_id],
                              timeout_s=30, interval_s=0.2, what="the duplicated event's run")[0]
            refused = wait_for(lambda: (s := run_state(api_url, str(second.id))) is not None and s.is_final() and s,
                               timeout_s=120, interval_s=0.25, what="the duplicate run to end")
            assert refused.is_failed() and f"is handled by run {first_id}" in (refused.message or ""), refused
            assert store.get_incident(incident_id).flow_run_id == first_id  # type: ignore[union-attr]
            started_notes = [e for e in store.timeline(incident_id) if e.event == "run started"]
            assert len(started_notes) == 1, "the duplicate stopped before it noted anything"
            assert store.approvals(incident_id) == [] and run_state(api_url, first_id).name == "Paused"
            # Events are handled in order: the re-sent one, before the other emitter's, started nothing.
            assert len(runs_for(api_url, incident_id)) == 2, "the re-sent event (same id) started no run"
            print(f"whole scenario {time.monotonic() - started:.1f}s")
        except BaseException:
            for replica in replicas:  # what each replica said, for the failure's report
                print(f"--- {replica.log.name} (last 4000 characters) ---\n{replica.output()[-4000:]}")
            raise
        finally:
            store.dispose()
            for replica in replicas:
                replica.stop()
