"""One idempotent call that prepares a Prefect server for the runbooks, before serving or deploying them.

Creates what Prefect never creates by itself (docs/reference/prefect.md §3.2, §5, §8): the ``runbooks`` work pool that
``prefect deploy`` requires, the per-service concurrency limit of each known service (flows also ensure theirs on
first use; creating them up front makes them visible in the UI before the first incident), and the automation
that marks runs whose heartbeats stopped as ``Crashed``. Safe to run from every process at every start.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from uuid import UUID

from remediation.orchestration.limits import (
    RUNBOOKS_POOL,
    ensure_service_limit,
    ensure_work_pool,
    ensure_zombie_automation,
)
from remediation.settings import Settings

log = logging.getLogger("remediation.orchestration")

DEFAULT_SERVICES = ("kamkmserve",)


@dataclass
class Bootstrapped:
    work_pool: str
    service_limits: list[str] = field(default_factory=list)
    zombie_automation: UUID | None = None


def bootstrap(settings: Settings, *, services: Iterable[str] = DEFAULT_SERVICES, work_pool: str = RUNBOOKS_POOL,
              heartbeat_s: int | None = None) -> Bootstrapped:
    """Work pool, one ``remediate-<service>`` limit per service, zombie automation; returns what exists now.

    ``heartbeat_s`` is the flow heartbeat interval of the processes that will run flows (default: this
    process's ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``); the automation's window is derived from it.
    """
    ensure_work_pool(work_pool)
    limits = [ensure_service_limit(service) for service in services]
    automation = ensure_zombie_automation(heartbeat_s)
    log.info("bootstrapped Prefect for %s: pool %s, limits %s, zombie automation %s", settings.platform,
             work_pool, ", ".join(limits), automation or "not installed")
    return Bootstrapped(work_pool=work_pool, service_limits=limits, zombie_automation=automation)
