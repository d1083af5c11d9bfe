"""Capacity on AWS: read before write (a repeated scale makes no call), the group's own limits are kept even where
moto would let them pass, and a busy group says so."""

from __future__ import annotations

from typing import Any

import pytest

from remediation.providers.aws.capacity import AsgCapacity, EcsCapacity
from remediation.providers.platform import PlatformError
from tests.providers.aws.stubkit import ecs_service, offline_session, stubbed


def group(desired: int, low: int = 1, high: int = 4) -> dict[str, Any]:
    return {"AutoScalingGroups": [{
        "AutoScalingGroupName": "web", "MinSize": low, "MaxSize": high, "DesiredCapacity": desired,
        "DefaultCooldown": 300, "AvailabilityZones": ["us-east-1a"], "HealthCheckType": "ELB",
        "CreatedTime": "2026-11-01T00:00:00Z"}]}


async def test_scaling_ecs_to_the_count_it_already_has_makes_no_update() -> None:
    session = offline_session()
    with stubbed(session, "ecs") as stub:  # no update_service queued
        stub.add_response("describe_services", ecs_service("web:1", desired=4), None)
        assert await EcsCapacity(session, "kamkmserve", {"kamkmserve": "web"}).scale("kamkmserve", 4) == 4


async def test_an_asg_beyond_its_max_size_is_refused_without_a_call() -> None:
    """AWS would answer ValidationError; moto 5.2.5 accepts Desired > Max. Either way we never ask."""
    session = offline_session()
    with stubbed(session, "autoscaling") as stub:
        stub.add_response("describe_auto_scaling_groups", group(desired=2, high=4), None)
        with pytest.raises(PlatformError, match=r"allows 1\.\.4 instances, not 6; widening the group is a human"):
            await AsgCapacity(session, {"kamkmserve": "web"}).scale("kamkmserve", 6)


async def test_a_group_busy_with_another_activity_is_a_clear_error() -> None:
    session = offline_session()
    with stubbed(session, "autoscaling") as stub:
        stub.add_response("describe_auto_scaling_groups", group(desired=2), None)
        stub.add_client_error("set_desired_capacity", service_error_code="ScalingActivityInProgress",
                              http_status_code=400)
        with pytest.raises(PlatformError, match="busy with another scaling activity"):
            await AsgCapacity(session, {"kamkmserve": "web"}).scale("kamkmserve", 3)


async def test_the_asg_count_is_read_back_after_the_change() -> None:
    session = offline_session()
    with stubbed(session, "autoscaling") as stub:
        stub.add_response("describe_auto_scaling_groups", group(desired=2), None)
        stub.add_response("set_desired_capacity", {},
                          {"AutoScalingGroupName": "web", "DesiredCapacity": 3, "HonorCooldown": False})
        stub.add_response("describe_auto_scaling_groups", group(desired=3), None)
        assert await AsgCapacity(session, {"kamkmserve": "web"}).scale("kamkmserve", 3) == 3
