"""Jobs contract: the worker pools are listed with their counts; pausing returns the count to restore, and a
repeated pause or resume acts once."""

from __future__ import annotations

import pytest

from remediation.providers.platform import PlatformError
from tests.contracts.implementations import JOBS, JobsHarness, params


@pytest.fixture(params=params(JOBS))
def jobs(request: pytest.FixtureRequest) -> JobsHarness:
    harness: JobsHarness = request.param.build(request)
    return harness


async def test_pools_are_listed_with_their_workers_and_weight(jobs: JobsHarness) -> None:
    listed = await jobs.adapter.jobs(jobs.service)
    assert {j.name: (j.workers, j.heavy) for j in listed} == jobs.expected


async def test_pausing_returns_the_count_to_restore_and_resuming_restores_it(jobs: JobsHarness) -> None:
    heavy = next(name for name, (_, is_heavy) in jobs.expected.items() if is_heavy)
    running = jobs.expected[heavy][0]
    assert await jobs.adapter.set_workers(jobs.service, heavy, 0) == running
    assert jobs.observe(heavy) == 0
    assert await jobs.adapter.set_workers(jobs.service, heavy, 0) == 0  # a repeated pause changes nothing
    assert jobs.observe(heavy) == 0
    assert await jobs.adapter.set_workers(jobs.service, heavy, running) == 0
    assert jobs.observe(heavy) == running
    assert {j.name: j.workers for j in await jobs.adapter.jobs(jobs.service)}[heavy] == running


async def test_other_pools_are_untouched(jobs: JobsHarness) -> None:
    heavy, light = sorted(jobs.expected, key=lambda name: not jobs.expected[name][1])
    await jobs.adapter.set_workers(jobs.service, heavy, 0)
    assert jobs.observe(light) == jobs.expected[light][0]


async def test_an_unknown_pool_is_a_platform_error(jobs: JobsHarness) -> None:
    with pytest.raises(PlatformError):
        await jobs.adapter.set_workers(jobs.service, "no-such-pool", 0)
