"""Replicas registering the same deployment at once leave one trigger automation, never two (one event, one run)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any
from uuid import UUID

import pytest

from remediation.orchestration.events import trigger_spec
from remediation.orchestration.triggers import duplicates, owner_of, prune_duplicate_triggers


def automation(name: str, ident: str) -> SimpleNamespace:
    return SimpleNamespace(name=name, id=UUID(ident))


def test_of_each_trigger_name_only_the_smallest_id_survives_and_other_automations_are_left_alone() -> None:
    keep = automation("t", "00000000-0000-0000-0000-000000000001")
    extra = automation("t", "00000000-0000-0000-0000-000000000002")
    third = automation("t", "00000000-0000-0000-0000-000000000003")
    second_trigger = automation("u", "00000000-0000-0000-0000-000000000004")
    persons_own = automation("page me and run it", "00000000-0000-0000-0000-000000000005")
    persons_own_twin = automation("page me and run it", "00000000-0000-0000-0000-000000000006")

    found = duplicates([third, extra, persons_own, keep, second_trigger, persons_own_twin], ["t", "u"])

    assert sorted(a.id for a in found) == [extra.id, third.id]


async def raced_registrations(client: Any) -> tuple[Any, Any, list[UUID]]:
    """The tiny deployment's alert trigger after two registrations interleaved (both deleted, then both created):
    the deployment, the trigger, and the two automations' ids."""
    from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger
    from pydantic import TypeAdapter

    deployment = await client.read_deployment_by_name("orch-tiny/tiny")
    trigger = TypeAdapter(DeploymentEventTrigger).validate_python(
        {k: v for k, v in trigger_spec("rolling-restart").items() if k != "type"})
    trigger.set_deployment_id(deployment.id)
    await client.delete_resource_owned_automations(owner_of(deployment.id))
    created = [await client.create_automation(trigger.as_automation()) for _ in range(2)]
    return deployment, trigger, created


@pytest.mark.usefixtures("tiny_deployment")
async def test_two_registrations_interleaved_leave_one_automation_and_pruning_again_changes_nothing() -> None:
    """The race as it happens: both replicas delete the deployment's automations, then both create theirs. After
    each prunes, one automation is left, the same whichever replica pruned first."""
    from prefect import get_client

    async with get_client() as client:
        deployment, trigger, created = await raced_registrations(client)

        async def owned() -> list[UUID]:
            return [a.id for a in await client.read_resource_related_automations(owner_of(deployment.id))]

        assert sorted(await owned()) == sorted(created), "the race leaves two automations for one trigger"
        names = {deployment.id: [trigger.name]}
        assert await prune_duplicate_triggers(client, names) == 1
        assert await owned() == [min(created, key=str)]
        assert await prune_duplicate_triggers(client, names) == 0, "a second pruning (the other replica's)"
        assert await owned() == [min(created, key=str)]
        await client.delete_resource_owned_automations(owner_of(deployment.id))


class StaleReads:
    """A client that lists the automations as they were before another replica's pruning deleted some."""

    def __init__(self, client: Any, listed: list[Any]) -> None:
        self.client, self.listed = client, listed

    async def read_resource_related_automations(self, resource_id: str) -> list[Any]:
        return self.listed

    async def delete_automation(self, automation_id: UUID) -> None:
        await self.client.delete_automation(automation_id)


@pytest.mark.usefixtures("tiny_deployment")
async def test_an_automation_the_other_replica_deleted_first_is_not_an_error() -> None:
    """Both replicas prune at once: the second one's deletion answers 404, and its serve must start anyway."""
    from prefect import get_client

    async with get_client() as client:
        deployment, trigger, _ = await raced_registrations(client)
        listed = await client.read_resource_related_automations(owner_of(deployment.id))
        names = {deployment.id: [trigger.name]}
        assert await prune_duplicate_triggers(client, names) == 1  # the first replica's

        assert await prune_duplicate_triggers(StaleReads(client, listed), names) == 1  # the second's: a 404, no error
        assert len(await client.read_resource_related_automations(owner_of(deployment.id))) == 1
        await client.delete_resource_owned_automations(owner_of(deployment.id))
