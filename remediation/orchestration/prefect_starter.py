"""Start a runbook run through Prefect's own path: create it Scheduled and let a served runner or worker take it.

This is the path every other starter falls back to. It needs nothing in this process but an API client, so it
keeps working when the warm executor is unhealthy, full or does not know the deployment. Its cost is the
runner's poll plus a fresh interpreter per run (docs/reference/prefect-fast-start.md: ~1.5 s + poll).
"""

from __future__ import annotations

import logging
from typing import Any

from remediation.orchestration.starter import StartFailed

log = logging.getLogger("remediation.orchestration")


class DeploymentStarter:
    """``RunStarter`` over ``arun_deployment(name, timeout=0, idempotency_key=...)``.

    Prefect scopes idempotency keys per *flow* and never expires them (docs/reference/prefect.md §4.1): the same key
    returns the run that already exists, even a finished one, and silently ignores new parameters. Callers derive the
    key from the incident (and attempt), which is exactly the guarantee ``RunStarter`` asks for.
    """

    async def start(self, deployment: str, parameters: dict[str, Any], idempotency_key: str) -> str:
        from prefect.deployments import arun_deployment

        try:
            run = await arun_deployment(
                deployment, parameters=parameters, timeout=0, idempotency_key=idempotency_key,
                as_subflow=False,  # intake is not a flow; never link the run under whatever context calls us
            )
        except Exception as exc:  # the API is down, the deployment is missing, parameters fail the schema, ...
            raise StartFailed(f"could not create a run of {deployment}: {type(exc).__name__}: {exc}") from exc
        log.info("run %s of %s created for a runner (key %s)", run.id, deployment, idempotency_key)
        return str(run.id)
