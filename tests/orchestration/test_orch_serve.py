"""Serving: the deployments built from prefect.yaml, and a served run picked up from Prefect's own path."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import yaml

from deployments.serve import build_deployments, runbook_specs, serve_runbooks
from remediation.orchestration.events import trigger_spec
from remediation.orchestration.prefect_starter import DeploymentStarter
from remediation.settings import Settings
from tests.orchestration.orch_flows import records, tiny
from tests.orchestration.orchkit import history, key, wait_final

REPO = Path(__file__).resolve().parents[2]


def test_served_deployments_match_prefect_yaml() -> None:
    spec = {d["name"]: d for d in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]}
    built = build_deployments(runbook_specs(), parameter_defaults={"elevated-error-rate": {"mode": "auto"}})
    assert sorted(d.name for d in built) == sorted(spec)  # one served deployment per prefect.yaml entry
    deployment = next(d for d in built if d.name == "elevated-error-rate")
    entry = spec["elevated-error-rate"]
    assert (deployment.flow_name, deployment.name) == ("elevated-error-rate", "elevated-error-rate")
    assert deployment.tags == entry["tags"]
    assert deployment.description == entry["description"]
    assert deployment.parameters == {**entry["parameters"], "mode": "auto"}
    assert deployment.work_pool_name is None  # served: no pool
    assert deployment.entrypoint == "flows.elevated_error_rate.elevated_error_rate"  # importable from any cwd
    (trigger,) = deployment.triggers
    assert trigger.name == entry["triggers"][0]["name"]
    assert trigger.expect == {"remediation.alert.fired"}
    assert trigger.parameters == entry["triggers"][0]["parameters"]


def test_prefect_yaml_trigger_is_the_event_contract() -> None:
    """prefect.yaml spells the trigger by hand; it must equal what remediation.orchestration.events defines."""
    deployments = yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
    assert len(deployments) == 6  # one per runbook; an empty list must not pass the loop below vacuously
    for entry in deployments:
        assert entry["triggers"] == [trigger_spec(entry["name"])]


@pytest.mark.prefect_server
async def test_serve_runbooks_picks_up_a_run_deployment_run(tiny_deployment: str, tmp_path: Path) -> None:
    from prefect.deployments.runner import RunnerDeployment
    from prefect.types.entrypoint import EntrypointType

    record = tmp_path / "runs.jsonl"
    served = RunnerDeployment.from_flow(tiny, name="tiny", entrypoint_type=EntrypointType.MODULE_PATH)
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=serve_runbooks, args=(Settings(home=tmp_path),), daemon=True,
                              kwargs={"query_seconds": 0.5, "stop": stop, "ready": ready, "deployments": [served]})
    thread.start()
    try:
        assert ready.wait(60), "serve never registered its deployments"
        run_id = await DeploymentStarter().start(tiny_deployment, {"label": "served", "record_to": str(record)},
                                                 key("served"))
        run = wait_final(run_id, timeout_s=60)
        assert run.state.is_completed()
        assert "Submitting" in history(run_id)  # the runner's claim, not the warm executor's
        (start,) = [r for r in records(record) if r["event"] == "start"]
        assert start["pid"] != os.getpid()  # a served run is a child process
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive(), "serve_runbooks did not return after stop was set"
