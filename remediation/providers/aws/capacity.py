"""Capacity on AWS: an ECS service's ``desiredCount``, or an EC2 Auto Scaling group's desired capacity.

Both read before they write, so a retried or repeated scale to N is a no-op (never a second action), and both
read the result back. A group's own MinSize..MaxSize is a hard limit here: AWS refuses beyond it, moto 5.2.5
wrongly accepts (docs/reference/integrations.md §3.3), so the adapter checks first and never widens the group itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from remediation.providers.aws.session import AwsError, AwsSession
from remediation.providers.platform import PlatformError


def _target(names: Mapping[str, str], service: str) -> str:
    """Our service name -> the AWS resource name (the same name when not mapped: an unknown one is not found,
    never silently the web service)."""
    return names.get(service, service)


async def describe_ecs_service(session: AwsSession, cluster: str, name: str) -> dict[str, Any]:
    """The service's description; a missing or inactive service is a PlatformError that names it."""
    body = await session.call("ecs", "describe_services", cluster=cluster, services=[name], include=["TAGS"])
    services = [s for s in body.get("services", []) if s.get("status") != "INACTIVE"]
    if not services:
        reasons = ", ".join(str(f.get("reason")) for f in body.get("failures", [])) or "not listed"
        raise PlatformError(f"ECS service {name!r} not found in cluster {cluster!r} ({reasons})")
    service: dict[str, Any] = services[0]
    return service


class EcsCapacity:
    """:class:`~remediation.providers.capabilities.Capacity` as an ECS service's desired task count."""

    def __init__(self, session: AwsSession, cluster: str, services: Mapping[str, str] | None = None) -> None:
        self.session = session
        self.cluster = cluster
        self.services = dict(services or {})

    async def replicas(self, service: str) -> int:
        name = _target(self.services, service)
        described = await describe_ecs_service(self.session, self.cluster, name)
        return int(described["desiredCount"])

    async def scale(self, service: str, replicas: int) -> int:
        if replicas < 1:
            raise PlatformError(f"refusing to scale {service} to {replicas}: the web service needs a replica")
        name = _target(self.services, service)
        described = await describe_ecs_service(self.session, self.cluster, name)
        if int(described["desiredCount"]) == replicas:
            return replicas
        body = await self.session.call("ecs", "update_service", cluster=self.cluster, service=name,
                                       desiredCount=replicas)
        return int(body["service"]["desiredCount"])


class AsgCapacity:
    """:class:`~remediation.providers.capabilities.Capacity` as an Auto Scaling group's desired capacity."""

    def __init__(self, session: AwsSession, groups: Mapping[str, str] | None = None) -> None:
        self.session = session
        self.groups = dict(groups or {})

    async def _group(self, name: str) -> dict[str, Any]:
        body = await self.session.call("autoscaling", "describe_auto_scaling_groups", AutoScalingGroupNames=[name])
        groups = body.get("AutoScalingGroups", [])
        if not groups:
            raise PlatformError(f"Auto Scaling group {name!r} not found")
        group: dict[str, Any] = groups[0]
        return group

    async def replicas(self, service: str) -> int:
        return int((await self._group(_target(self.groups, service)))["DesiredCapacity"])

    async def scale(self, service: str, replicas: int) -> int:
        name = _target(self.groups, service)
        group = await self._group(name)
        low, high = int(group["MinSize"]), int(group["MaxSize"])
        if not low <= replicas <= high:
            raise PlatformError(f"Auto Scaling group {name!r} allows {low}..{high} instances, not {replicas}; "
                                "widening the group is a human decision")
        if int(group["DesiredCapacity"]) == replicas:
            return replicas
        try:
            # HonorCooldown False: containment must not wait out a cooldown another scaling action started.
            await self.session.call("autoscaling", "set_desired_capacity", AutoScalingGroupName=name,
                                    DesiredCapacity=replicas, HonorCooldown=False)
        except AwsError as exc:
            if exc.is_("ScalingActivityInProgress"):
                raise PlatformError(f"Auto Scaling group {name!r} is busy with another scaling activity; "
                                    "try again once it ends") from exc
            raise
        return int((await self._group(name))["DesiredCapacity"])
