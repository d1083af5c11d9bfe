"""Which capability carries out a plan, and whether it can before anyone is asked to approve it.

A step whose lever is absent (no platform chosen, or the platform has none) or known to fail (its read-only
question fails now) is denied with that reason and escalated: a person is never paged to approve a step that
cannot be carried out. The gate checks the lever again where the plan is applied (remediation.gate).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from remediation.models import (
    BlockActor,
    CreateIndexPlan,
    DisableMaintenance,
    DrainInstance,
    EnableMaintenance,
    PauseJobs,
    Plan,
    ReloadSignatures,
    RestartInstance,
    RestoreInstance,
    ResumeJobs,
    Risk,
    Rollback,
    ScaleDown,
    ScaleUp,
    SetAuthSetting,
    SetFeatureFlag,
    SetUploadAllowlist,
    TerminateBackend,
    UnblockActor,
)
from remediation.providers.platform import PlatformError
from remediation.runtime import Providers

#: plan type -> the Providers field that applies it.
CAPABILITY: dict[type, str] = {
    EnableMaintenance: "edge", DisableMaintenance: "edge", SetFeatureFlag: "edge", Rollback: "deploys",
    ScaleUp: "capacity", ScaleDown: "capacity", PauseJobs: "jobs", ResumeJobs: "jobs",
    TerminateBackend: "database", CreateIndexPlan: "database", BlockActor: "blocks", UnblockActor: "blocks",
    SetUploadAllowlist: "uploads", ReloadSignatures: "antivirus", SetAuthSetting: "identity",
    DrainInstance: "instances", RestoreInstance: "instances", RestartInstance: "instances",
}


def capability_of(plan: Plan) -> str | None:
    return CAPABILITY.get(type(plan))


def lever_problem(plan: Plan, providers: Providers) -> str | None:
    """Why no lever can apply ``plan`` here, or None when one is configured (pure: asks nobody)."""
    capability = capability_of(plan)
    if capability is None:
        return None if plan.risk is Risk.OBSERVE else f"no lever applies {plan.kind}"
    if getattr(providers, capability, None) is None or providers.read_only(capability):
        return providers.no_lever(capability)
    return None


#: The cheapest read-only question each lever answers; ``remediate check`` asks the same ones.
QUESTIONS: dict[str, Callable[[Any, str], Awaitable[Any]]] = {
    "edge": lambda lever, service: lever.maintenance_prefixes(),
    "deploys": lambda lever, service: lever.releases(),
    "capacity": lambda lever, service: lever.replicas(service),
    "jobs": lambda lever, service: lever.jobs(service),
    "database": lambda lever, service: lever.blocking_locks(),
    "uploads": lambda lever, service: lever.allowlist(),
    # AWS's blocks() also carries out due expiries; a question must change nothing, so prefer a pure listing.
    "blocks": lambda lever, service: (getattr(lever, "listing", None) or lever.blocks)(),
    "antivirus": lambda lever, service: lever.ping(),
    "identity": lambda lever, service: lever.check(),
    "instances": lambda lever, service: lever.instances(service),
}


async def ask(capability: str, lever: Any, service: str) -> Any:
    """Ask ``lever`` its read-only question (see :data:`QUESTIONS`)."""
    return await QUESTIONS[capability](lever, service)


async def preflight(plan: Plan, providers: Providers) -> str | None:
    """:func:`lever_problem`, then the lever's read-only question: a lever that fails it now is known to fail."""
    problem = lever_problem(plan, providers)
    capability = capability_of(plan)
    if problem is not None or capability is None:
        return problem
    budget = max(providers.settings.http_timeout_s * 2, 2.0)
    try:
        answer = await asyncio.wait_for(ask(capability, getattr(providers, capability), plan.service), budget)
    except TimeoutError:
        return f"the {capability} lever did not answer its read-only check within {budget:g}s"
    except (PlatformError, OSError, RuntimeError, ValueError) as exc:
        return f"the {capability} lever fails its read-only check: {exc}"[:400]
    if answer is False:  # antivirus.ping(): no PONG
        return f"the {capability} lever fails its read-only check: no answer"
    available = getattr(answer, "available", True)
    if available is False:
        return f"the {capability} lever fails its read-only check: {getattr(answer, 'reason', '')}"[:400]
    return None
