"""``prefect --no-prompt deploy --all`` of prefect.yaml against a real ``prefect server start``, read back.

Proves the production path: the pool from bootstrap is enough for ``prefect deploy``; the deployment carries the
flow's parameter schema (names and types), tags and defaults; its event trigger exists as an automation and, fed
the documented event, creates a run with the event's parameters (the Jinja ``| string`` pitfall included).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from remediation.orchestration.events import ALERT_EVENT, alert_event
from remediation.orchestration.limits import RUNBOOKS_POOL, ensure_work_pool
from remediation.orchestration.stack import LocalPrefectServer, start_local_prefect_server
from tests.helpers import local_http

REPO = Path(__file__).resolve().parents[2]
DEPLOYMENT = "elevated-error-rate/elevated-error-rate"

pytestmark = pytest.mark.prefect_server


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPrefectServer]:
    home = tmp_path_factory.mktemp("prefect-server")
    server = start_local_prefect_server(home, database_url=f"sqlite+aiosqlite:///{home / 'prefect.db'}")
    try:
        yield server
    finally:
        server.stop()
        assert server.process.poll() is not None


def _api(server: LocalPrefectServer) -> Any:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    return temporary_settings(updates={PREFECT_API_URL: server.api_url})


def _deploy(server: LocalPrefectServer, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")},
           "PREFECT_API_URL": server.api_url, "PREFECT_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=180)


def test_prefect_deploy_all_registers_the_runbooks(prefect_server: LocalPrefectServer, tmp_path: Path) -> None:
    from prefect import get_client

    yaml_before = (REPO / "prefect.yaml").read_text()
    with _api(prefect_server):
        ensure_work_pool(RUNBOOKS_POOL)
    result = _deploy(prefect_server, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (REPO / "prefect.yaml").read_text() == yaml_before  # deploy must not rewrite our file

    with _api(prefect_server), get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name(DEPLOYMENT)
        automations = client.read_automations_by_name("elevated-error-rate: alert fired")
    assert deployment.work_pool_name == RUNBOOKS_POOL
    assert deployment.entrypoint == "flows/elevated_error_rate.py:elevated_error_rate"
    assert set(deployment.tags) == {"remediation", "kamkmserve", "runbook-1"}
    assert deployment.parameters == {"service": "kamkmserve", "severity": "sev2", "threshold_pct": 1.0}
    assert deployment.enforce_parameter_schema

    schema = deployment.parameter_openapi_schema
    props = schema["properties"]
    assert {"service", "mode", "severity", "threshold_pct", "alert_name", "incident_id"} <= set(props)
    assert props["service"]["type"] == "string"
    assert props["threshold_pct"]["type"] == "number"
    assert props["min_records"]["type"] == "integer"
    assert props["severity"]["$ref"].endswith("/Severity")
    assert set(schema["definitions"]["Severity"]["enum"]) >= {"sev1", "sev2"}
    assert {"$ref": "#/definitions/Mode"} in props["mode"]["anyOf"]
    assert set(schema["definitions"]["Mode"]["enum"]) == {"dry_run", "approve", "auto"}

    (automation,) = automations
    assert automation.enabled
    assert automation.trigger.expect == {ALERT_EVENT}
    (action,) = automation.actions
    assert str(action.deployment_id) == str(deployment.id)


def test_the_deployed_trigger_turns_an_alert_event_into_a_run(prefect_server: LocalPrefectServer,
                                                              tmp_path: Path) -> None:
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

    incident = f"inc-{uuid.uuid4().hex[:12]}"
    spec = alert_event("elevated-error-rate", service="kamkmserve", severity="sev1", alert_name="HighErrorRate",
                       incident_id=incident)
    event = {"id": str(uuid.uuid4()), "occurred": datetime.now(UTC).isoformat(), **spec}
    if not _deployed(prefect_server):
        assert _deploy(prefect_server, tmp_path).returncode == 0
    response = local_http.post(f"{prefect_server.api_url}/events", json=[event], timeout=10)
    assert response.status_code == 204

    deadline = time.monotonic() + 30
    runs: list[Any] = []
    while time.monotonic() < deadline and not runs:
        with _api(prefect_server), get_client(sync_client=True) as client:
            found = client.read_flow_runs(deployment_filter=DeploymentFilter(
                name=DeploymentFilterName(any_=["elevated-error-rate"])))
        runs = [r for r in found if r.parameters.get("incident_id") == incident]
        time.sleep(0.2)
    assert runs, "the trigger created no run (a template error only shows as a server warning)"
    assert runs[0].parameters == {"service": "kamkmserve", "severity": "sev1", "threshold_pct": 1.0,
                                  "alert_name": "HighErrorRate", "incident_id": incident}
    assert runs[0].state.is_scheduled()  # no worker here: it waits in the pool, as designed


def _deployed(server: LocalPrefectServer) -> bool:
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    with _api(server), get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(DEPLOYMENT)
            return True
        except ObjectNotFound:
            return False
