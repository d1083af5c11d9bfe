"""One trigger automation per deployment, however many replicas register it at once.

Prefect registers a served deployment's triggers by deleting the automations the deployment owns and creating them
again (``RunnerDeployment._create_triggers``, 3.9.1). Two ``remediate serve`` replicas starting together interleave
those steps (A deletes, B deletes, A creates, B creates) and leave two automations for one trigger: every alert event
then starts two runs. The second run stops at ``refuse_duplicate`` before it changes anything, but it is noise in the
UI and a second claim on the service's slot, so each replica, after registering, keeps one automation per trigger name
and deletes the rest.

The survivor is the one with the smallest id, so that replicas pruning at the same moment keep the same one. Each
replica prunes after its own creation, so the last pruning always follows the last creation and the API ends with
exactly one automation per trigger.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any
from uuid import UUID

log = logging.getLogger("remediation.orchestration.triggers")


def owner_of(deployment_id: UUID | str) -> str:
    """The resource Prefect relates a deployment's trigger automations to (as their owner)."""
    return f"prefect.deployment.{deployment_id}"


def duplicates(automations: Iterable[Any], names: Iterable[str]) -> list[Any]:
    """The automations to delete among one deployment's: of each trigger name in ``names``, all but the one with the
    smallest id. Automations of other names (a person's own automation that runs the deployment) are left alone."""
    wanted = set(names)
    groups: defaultdict[str, list[Any]] = defaultdict(list)
    for automation in automations:
        if automation.name in wanted:
            groups[automation.name].append(automation)
    extra: list[Any] = []
    for group in groups.values():
        extra.extend(sorted(group, key=lambda a: str(a.id))[1:])
    return extra


async def prune_duplicate_triggers(client: Any, triggers: Mapping[UUID, Iterable[str]]) -> int:
    """Delete the duplicate automations of each deployment's triggers (deployment id -> its trigger names); how many
    this call found to delete (another replica pruning at the same moment may have deleted some of them first)."""
    extra: list[Any] = []
    for deployment_id, names in triggers.items():
        extra.extend(duplicates(await client.read_resource_related_automations(owner_of(deployment_id)), names))
    for automation in extra:
        await _delete(client, automation.id)
    if extra:
        log.info("deleted %d duplicate trigger automation(s) left by replicas registering at once: %s",
                 len(extra), ", ".join(sorted({a.name for a in extra})))
    return len(extra)


async def _delete(client: Any, automation_id: UUID) -> None:
    """Delete one automation; one that is gone already (the other replica's pruning) is what was wanted."""
    from prefect.exceptions import PrefectHTTPStatusError

    try:
        await client.delete_automation(automation_id)
    except PrefectHTTPStatusError as exc:
        if exc.response.status_code != 404:
            raise
