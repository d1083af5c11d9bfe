"""Start the run that continues a dead run's incident at recover (``remediation.takeover``), through Prefect.

The continuation is a run of the same deployment with the dead run's own parameters (its thresholds and verification
budget still apply), adopting the incident (``incident_id``) and marked ``continue_at_recover``. Its idempotency key
names the dead run, so replicas reconciling at once, or one retrying after a crash, create one continuation, never two.
"""

from __future__ import annotations

import asyncio
from typing import Any

from remediation.orchestration.prefect_starter import DeploymentStarter
from remediation.orchestration.starter import RunStarter
from remediation.store.rows import IncidentSummary

CONTINUE_PARAMETER = "continue_at_recover"


def continuation_key(incident_id: str, dead_run_id: str) -> str:
    return f"{incident_id}:continue:{dead_run_id}"


def continuation_parameters(incident: IncidentSummary, dead_run: dict[str, Any] | None) -> dict[str, Any]:
    """The dead run's parameters (when Prefect still has them), adopting the incident and starting at recover."""
    parameters: dict[str, Any] = dict(dead_run or {})
    parameters.setdefault("service", incident.service)
    parameters.setdefault("severity", incident.severity.value)
    parameters.setdefault("alert_name", incident.alert.name)
    parameters.update({"incident_id": incident.id, "mode": incident.mode.value, CONTINUE_PARAMETER: True})
    return parameters


def _dead_run_parameters(flow_run_id: str) -> dict[str, Any] | None:
    from uuid import UUID

    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            return dict(client.read_flow_run(UUID(flow_run_id)).parameters or {})
        except ObjectNotFound:
            return None


class PrefectContinuer:
    """``remediation.reconcile.Continuer`` over Prefect deployments (``<runbook>/<runbook>``, as intake starts)."""

    def __init__(self, starter: RunStarter | None = None) -> None:
        self.starter = starter or DeploymentStarter()

    def __call__(self, incident: IncidentSummary, dead_run_id: str) -> str:
        parameters = continuation_parameters(incident, _dead_run_parameters(dead_run_id))
        deployment = f"{incident.runbook}/{incident.runbook}"
        return asyncio.run(self.starter.start(deployment, parameters, continuation_key(incident.id, dead_run_id)))
