"""Instances contract: draining takes one instance out of rotation (and waits for it), restoring puts it back
healthy, both repeat safely, and restart is refused for anything that is not one of the service's instances. The
simulator's load balancer drains for real (deregistration delay); moto has no draining phase, which is covered for
the AWS adapter by recorded responses in tests/providers/aws."""

from __future__ import annotations

import pytest

from remediation.providers.platform import PlatformError
from tests.contracts.implementations import INSTANCES, InstancesHarness, params


@pytest.fixture(params=params(INSTANCES))
def instances(request: pytest.FixtureRequest) -> InstancesHarness:
    harness: InstancesHarness = request.param.build(request)
    return harness


async def test_every_instance_is_listed_healthy(instances: InstancesHarness) -> None:
    listed = await instances.adapter.instances(instances.service)
    assert {(i.id, i.state) for i in listed} == {(i, "healthy") for i in instances.ids}
    assert all(i.serving for i in listed)


async def test_drain_takes_one_instance_out_and_leaves_the_others(instances: InstancesHarness) -> None:
    first, second = instances.ids
    drained = await instances.adapter.drain(instances.service, first, timeout_s=30)
    assert drained.id == first and not drained.serving
    assert instances.observe(first) == "unused" and instances.observe(second) == "healthy"
    again = await instances.adapter.drain(instances.service, first, timeout_s=30)
    assert not again.serving
    # ELBv2 lists registered targets only, the simulator every instance: a drained one is absent or not serving.
    listed = {i.id: i for i in await instances.adapter.instances(instances.service)}
    assert listed[second].serving and (first not in listed or not listed[first].serving)


async def test_restore_puts_it_back_healthy(instances: InstancesHarness) -> None:
    first = instances.ids[0]
    await instances.adapter.drain(instances.service, first, timeout_s=30)
    restored = await instances.adapter.restore(instances.service, first, timeout_s=30)
    assert restored.state == "healthy" and instances.observe(first) == "healthy"
    assert (await instances.adapter.restore(instances.service, first, timeout_s=30)).state == "healthy"


async def test_restart_reboots_an_instance_and_refuses_anything_else(instances: InstancesHarness) -> None:
    await instances.adapter.restart(instances.service, instances.ids[0])
    with pytest.raises(PlatformError):
        await instances.adapter.restart(instances.service, "task/abc")
    with pytest.raises(PlatformError):
        await instances.adapter.restart(instances.service, "i-0000000000000dead")


async def test_an_unknown_service_has_no_target_group(instances: InstancesHarness) -> None:
    with pytest.raises(PlatformError):
        await instances.adapter.instances("nope")
