"""ELBv2 drain and restore against AWS's answers (recorded): a deregistered target spends the deregistration delay
in ``draining`` before it reads ``unused``, and a registered one is ``initial`` before ``healthy``. moto has neither
phase (targets vanish or are healthy at once), so these waits are proven here, on a virtual clock."""

from __future__ import annotations

from typing import Any

import pytest

from remediation.providers.aws.instances import ElbInstances
from remediation.providers.clock import VirtualClock
from remediation.providers.platform import PlatformError
from tests.providers.aws.stubkit import offline_session, stubbed

TG = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/kamkmserve-web/0123456789abcdef"
ONE = {"TargetGroupArn": TG, "Targets": [{"Id": "i-0abc"}]}


def health(state: str, reason: str | None = None) -> dict[str, Any]:
    target_health: dict[str, Any] = {"State": state}
    if reason:
        target_health["Reason"] = reason
    return {"TargetHealthDescriptions": [{"Target": {"Id": "i-0abc", "Port": 3000}, "TargetHealth": target_health}]}


def adapter(clock: VirtualClock) -> tuple[ElbInstances, Any]:
    session = offline_session()
    return ElbInstances(session, {"kamkmserve": TG}, poll_s=5.0, clock=clock), session


async def test_drain_waits_out_the_deregistration_delay() -> None:
    clock = VirtualClock()
    instances, session = adapter(clock)
    with stubbed(session, "elbv2") as stub:
        stub.add_response("describe_target_health", health("healthy"), ONE)
        stub.add_response("deregister_targets", {},
                          {"TargetGroupArn": TG, "Targets": [{"Id": "i-0abc", "Port": 3000}]})
        stub.add_response("describe_target_health", health("draining", "Target.DeregistrationInProgress"), ONE)
        stub.add_response("describe_target_health", health("draining", "Target.DeregistrationInProgress"), ONE)
        stub.add_response("describe_target_health", health("unused", "Target.NotRegistered"), ONE)
        drained = await instances.drain("kamkmserve", "i-0abc", timeout_s=300)
    assert (drained.state, drained.detail, drained.serving) == ("unused", "Target.NotRegistered", False)
    assert clock.slept == [5.0, 5.0]


async def test_a_drain_that_outlasts_the_wait_is_a_platform_error_naming_the_state() -> None:
    clock = VirtualClock()
    instances, session = adapter(clock)
    with stubbed(session, "elbv2") as stub:
        stub.add_response("describe_target_health", health("healthy"), ONE)
        stub.add_response("deregister_targets", {}, None)
        for _ in range(4):
            stub.add_response("describe_target_health", health("draining", "Target.DeregistrationInProgress"), ONE)
        with pytest.raises(PlatformError, match=r"still draining \(Target.DeregistrationInProgress\) after 12s"):
            await instances.drain("kamkmserve", "i-0abc", timeout_s=12)
    assert sum(clock.slept) == pytest.approx(12)


async def test_draining_a_target_that_is_already_out_does_nothing() -> None:
    instances, session = adapter(VirtualClock())
    with stubbed(session, "elbv2") as stub:  # no deregister_targets queued
        stub.add_response("describe_target_health", health("unused", "Target.NotRegistered"), ONE)
        assert (await instances.drain("kamkmserve", "i-0abc", timeout_s=60)).state == "unused"


async def test_restore_registers_and_waits_through_initial_to_healthy() -> None:
    clock = VirtualClock()
    instances, session = adapter(clock)
    with stubbed(session, "elbv2") as stub:
        stub.add_response("describe_target_health", health("unused", "Target.NotRegistered"), ONE)
        stub.add_response("register_targets", {}, ONE)
        stub.add_response("describe_target_health", health("initial", "Elb.RegistrationInProgress"), ONE)
        stub.add_response("describe_target_health", health("healthy"), ONE)
        restored = await instances.restore("kamkmserve", "i-0abc", timeout_s=120)
    assert restored.state == "healthy" and clock.slept == [5.0]


async def test_restart_is_one_reboot_on_a_client_that_never_retries() -> None:
    instances, session = adapter(VirtualClock())
    assert session.client("ec2", retries=False).meta.config.retries == {"mode": "adaptive", "total_max_attempts": 1}
    with stubbed(session, "ec2", retries=False) as stub:
        stub.add_response("reboot_instances", {}, {"InstanceIds": ["i-0abc"]})
        await instances.restart("kamkmserve", "i-0abc")


async def test_a_failed_reboot_is_reported_not_repeated() -> None:
    instances, session = adapter(VirtualClock())
    with stubbed(session, "ec2", retries=False) as stub:
        stub.add_client_error("reboot_instances", service_error_code="RequestLimitExceeded", http_status_code=503)
        with pytest.raises(PlatformError, match="RequestLimitExceeded"):
            await instances.restart("kamkmserve", "i-0abc")
