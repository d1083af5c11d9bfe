"""Instances on AWS: EC2 instances behind an ELBv2 target group; drain = deregister, restore = register, each
followed by a bounded wait on ``describe_target_health``; restart = ``ec2.reboot_instances``.

The waits poll every ``poll_s`` on the injected clock (virtual in unit tests) and stop at their deadline with a
PlatformError naming the state last seen. On AWS a deregistered target spends the deregistration delay in
``draining`` and then reads ``unused``/``Target.NotRegistered``; moto has no draining phase
(docs/reference/integrations.md §3.3), so the draining path is covered by recorded responses (botocore Stubber).

Restart is the one call here that is not idempotent: a reboot retried after a lost answer is a second reboot. It
goes through a client with retries switched off, and its failure is reported, never repeated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from remediation.providers.aws.session import AwsError, AwsSession
from remediation.providers.capabilities import Clock
from remediation.providers.clock import RealClock
from remediation.providers.platform import Instance, PlatformError

OUT_OF_ROTATION = ("unused", "unavailable")


class ElbInstances:
    """:class:`~remediation.providers.capabilities.Instances` over ELBv2 target groups (one per service, or one)."""

    def __init__(self, session: AwsSession, target_groups: Mapping[str, str] | None = None, *,
                 default_target_group: str | None = None, poll_s: float = 5.0, clock: Clock | None = None) -> None:
        self.session = session
        self.target_groups = dict(target_groups or {})
        self.default_target_group = default_target_group
        self.poll_s = poll_s
        self.clock = clock or RealClock()

    def _group(self, service: str) -> str:
        arn = self.target_groups.get(service, self.default_target_group)
        if not arn:
            raise PlatformError(f"no ELBv2 target group configured for service {service!r}")
        return arn

    async def instances(self, service: str) -> list[Instance]:
        body = await self.session.call("elbv2", "describe_target_health", TargetGroupArn=self._group(service))
        return [_instance(item) for item in body.get("TargetHealthDescriptions", [])]

    async def drain(self, service: str, instance: str, timeout_s: float) -> Instance:
        group = self._group(service)
        seen, port = await self._health(group, instance)
        if seen.state in OUT_OF_ROTATION:
            return seen  # already out: nothing to do, nothing done twice
        target: dict[str, Any] = {"Id": instance, **({"Port": port} if port else {})}
        await self._elb("deregister_targets", instance, TargetGroupArn=group, Targets=[target])
        return await self._wait(group, instance, timeout_s, lambda i: i.state in OUT_OF_ROTATION, "out of rotation")

    async def restore(self, service: str, instance: str, timeout_s: float) -> Instance:
        group = self._group(service)
        seen, _ = await self._health(group, instance)
        if seen.state == "healthy":
            return seen
        if seen.state in OUT_OF_ROTATION or seen.state == "draining":
            await self._elb("register_targets", instance, TargetGroupArn=group, Targets=[{"Id": instance}])
        return await self._wait(group, instance, timeout_s, lambda i: i.state == "healthy", "healthy")

    async def restart(self, service: str, instance: str) -> None:
        if not instance.startswith("i-"):
            raise PlatformError(f"{instance!r} is not an EC2 instance id; only EC2 instances can be rebooted here")
        await self.session.call("ec2", "reboot_instances", retries=False, InstanceIds=[instance])

    async def _health(self, group: str, instance: str) -> tuple[Instance, int | None]:
        body = await self._elb("describe_target_health", instance, TargetGroupArn=group, Targets=[{"Id": instance}])
        items = body.get("TargetHealthDescriptions", [])
        if not items:
            return Instance(id=instance, state="unused", detail="Target.NotRegistered"), None
        port = items[0].get("Target", {}).get("Port")
        return _instance(items[0]), int(port) if port else None

    async def _wait(self, group: str, instance: str, timeout_s: float, done: Any, goal: str) -> Instance:
        deadline = self.clock.monotonic() + timeout_s
        while True:
            seen, _ = await self._health(group, instance)
            if done(seen):
                return seen
            left = deadline - self.clock.monotonic()
            if left <= 0:
                raise PlatformError(f"{instance} is still {seen.state} ({seen.detail or 'no reason given'}) after "
                                    f"{timeout_s:g}s waiting for it to be {goal}")
            await self.clock.sleep(min(self.poll_s, left))

    async def _elb(self, operation: str, instance: str, **params: Any) -> dict[str, Any]:
        try:
            return await self.session.call("elbv2", operation, **params)
        except AwsError as exc:
            if exc.is_("InvalidTarget"):
                raise PlatformError(f"{instance} is not a valid target of {params['TargetGroupArn']}: "
                                    f"{exc.detail}") from exc
            raise


def _instance(item: dict[str, Any]) -> Instance:
    health = item.get("TargetHealth", {})
    return Instance(id=str(item.get("Target", {}).get("Id", "")), state=str(health.get("State", "unknown")),
                    detail=str(health.get("Reason") or health.get("Description") or ""))
