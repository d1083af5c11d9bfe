"""End to end with the real Prometheus Alertmanager: alerts posted to its API reach our receiver, one incident
opens, one run starts (warm executor, a real Prefect API) and acts on the simulator; repeats start nothing; the
resolved notification lands on the incident's timeline while its run is still active."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from kamkmserve_sim import SimConfig, SimServer

from flows.elevated_error_rate import elevated_error_rate
from remediation import composition, runtime
from remediation.intake import create_app
from remediation.models import Approval, Mode
from remediation.orchestration.warm import WarmExecutor
from remediation.providers.approvals import Answer, ApprovalRequest
from remediation.providers.capabilities import Ballot
from remediation.settings import Settings
from remediation.store import Store
from tests.flows.flowkit import sim_state, wait_for_bad_release
from tests.helpers.alertmanager import free_port, running_alertmanager
from tests.intake.intakekit import serve_app

pytestmark = pytest.mark.usefixtures("prefect_api")

TOKEN = "e2e-intake-token"
DEPLOYMENT = "elevated-error-rate/elevated-error-rate"


class ApproveOnceResolved:
    """Holds the run at its approval until Alertmanager's resolved notification is stored, then approves:
    so the resolution provably arrives while the run is active."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def request(self, req: ApprovalRequest, ballot: Ballot) -> Approval:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(a.status.value == "resolved" for a in self.store.incident_alerts(req.incident_id)):
                # A SEV-1 rollback needs two people: both answer, through the run's own judge.
                for name in ("alice", "bob"):
                    ballot.judge(Answer(approve=True, approver=name, reason="resolved at source", step=req.step))
                assert ballot.decided is not None
                return ballot.decided
            await asyncio.sleep(0.3)
        return ballot.timed_out()


@pytest.fixture
def receiver_port() -> int:
    return free_port()


def wait(predicate: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def test_alertmanager_alerts_open_one_incident_start_one_run_and_the_runbook_acts(
    tmp_path: Path, receiver_port: int
) -> None:
    from prefect.deployments.runner import RunnerDeployment
    from prefect.types.entrypoint import EntrypointType

    RunnerDeployment.from_flow(elevated_error_rate, name="elevated-error-rate",
                               entrypoint_type=EntrypointType.MODULE_PATH,
                               parameters={"sample_interval_s": 0.5}).apply()
    sim = SimServer(SimConfig(scenario="bad-release", rps=200.0, onset_s=0.2, seed=11)).start()
    try:
        wait_for_bad_release(sim)
        settings = Settings(app_url=sim.url, platform="sim", sim_url=sim.url, home=tmp_path, mode=Mode.AUTO,
                            approvers=["alice", "bob"],
                            intake_token=TOKEN, intake_mode=Mode.AUTO, verify_interval_s=0.3,
                            verify_consecutive=3, verify_deadline_s=20.0, metrics_budget_per_min=100)
        live = composition.connect(settings)
        providers = live.with_(approvals=ApproveOnceResolved(live.store))
        store = providers.store
        labels = {"alertname": "KamkmserveHigh5xxRate", "service": "kamkmserve", "severity": "critical"}
        with runtime.use(providers), WarmExecutor({DEPLOYMENT: elevated_error_rate}, poll_s=0.3) as warm:
            webhook = f"http://127.0.0.1:{receiver_port}/alerts/alertmanager"
            with serve_app(create_app(settings, store, warm), receiver_port), \
                    running_alertmanager(tmp_path, webhook, TOKEN) as am:
                am.fire({**labels, "instance": "web-1"})
                am.fire({**labels, "instance": "web-2"})
                incident = wait(lambda: next((i for i in store.list_incidents() if i.flow_run_id), None), 30,
                                "an incident with a run")
                # Alertmanager repeats the group every 6 s: let at least one repeat arrive while the run waits.
                wait(lambda: _alert_count(store, incident.id) >= 3, 30, "a repeated notification")
                am.resolve({**labels, "instance": "web-1"})
                am.resolve({**labels, "instance": "web-2"})
                wait(lambda: store.get_report(incident.id), 90, "the run's report")
                wait(lambda: not warm.executing(), 30, "the run to finish publishing")

        incidents = store.list_incidents()
        assert len(incidents) == 1, "repeats must attach to the open incident, never open another"
        assert incidents[0].runbook == "elevated-error-rate" and incidents[0].severity.value == "sev1"
        report = store.get_report(incident.id)
        assert report is not None and report.outcome.value == "recovered"
        assert [a.kind for a in report.actions if a.applied] == ["enable_maintenance", "rollback",
                                                                  "disable_maintenance"]
        assert sim_state(sim)["current_release"]["version"] == "v1.4.2"
        timeline = [t.event for t in store.timeline(incident.id)]
        assert any("resolved at source" in event for event in timeline), timeline
        alerts = store.incident_alerts(incident.id)
        assert {a.fingerprint for a in alerts} and len({a.fingerprint for a in alerts}) == 2
        from prefect import get_client

        with get_client(sync_client=True) as client:
            run = client.read_flow_run(uuid.UUID(incident.flow_run_id))
        assert run.state is not None and run.state.is_completed()
        assert run.deployment_id is not None
    finally:
        sim.stop()


def _alert_count(store: Store, incident_id: str) -> int:
    incident = store.get_incident(incident_id)
    return incident.alert_count if incident else 0
