"""Capacity contract: every implementation (simulated, ECS, Auto Scaling) reads and sets the replica count the same
way, idempotently, and refuses what it cannot do without changing anything."""

from __future__ import annotations

import pytest

from remediation.providers.platform import PlatformError
from tests.contracts.implementations import CAPACITY, CapacityHarness, params


@pytest.fixture(params=params(CAPACITY))
def capacity(request: pytest.FixtureRequest) -> CapacityHarness:
    harness: CapacityHarness = request.param.build(request)
    return harness


@pytest.fixture(params=params(CAPACITY, needs="ceiling"))
def capped(request: pytest.FixtureRequest) -> CapacityHarness:
    harness: CapacityHarness = request.param.build(request)
    return harness


async def test_replicas_is_the_count_the_platform_holds(capacity: CapacityHarness) -> None:
    assert await capacity.adapter.replicas(capacity.service) == capacity.observe() == 2


async def test_scale_sets_the_count_on_the_platform_and_returns_it(capacity: CapacityHarness) -> None:
    assert await capacity.adapter.scale(capacity.service, 4) == 4
    assert capacity.observe() == 4
    assert await capacity.adapter.replicas(capacity.service) == 4


async def test_scaling_again_to_the_same_count_changes_nothing(capacity: CapacityHarness) -> None:
    await capacity.adapter.scale(capacity.service, 3)
    assert await capacity.adapter.scale(capacity.service, 3) == 3
    assert capacity.observe() == 3


async def test_scaling_back_down_restores_the_earlier_count(capacity: CapacityHarness) -> None:
    before = await capacity.adapter.replicas(capacity.service)
    await capacity.adapter.scale(capacity.service, before * 2)
    assert await capacity.adapter.scale(capacity.service, before) == before
    assert capacity.observe() == before


async def test_an_unknown_service_is_a_platform_error(capacity: CapacityHarness) -> None:
    with pytest.raises(PlatformError):
        await capacity.adapter.replicas(capacity.unknown_service)
    with pytest.raises(PlatformError):
        await capacity.adapter.scale(capacity.unknown_service, 3)
    assert capacity.observe() == 2


async def test_zero_replicas_is_refused_and_nothing_changes(capacity: CapacityHarness) -> None:
    with pytest.raises(PlatformError):
        await capacity.adapter.scale(capacity.service, 0)
    assert capacity.observe() == 2


async def test_a_count_above_the_platforms_ceiling_is_refused_and_nothing_changes(capped: CapacityHarness) -> None:
    assert capped.ceiling is not None
    with pytest.raises(PlatformError):
        await capped.adapter.scale(capped.service, capped.ceiling + 1)
    assert capped.observe() == 2
    assert await capped.adapter.scale(capped.service, capped.ceiling) == capped.ceiling
