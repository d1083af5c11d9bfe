"""Deploys contract: releases newest first with exactly one current; rollback promotes the named release on the
platform, idempotently, and refuses an unknown one without touching anything. The simulated platform (Vercel-style
deployments) and ECS task-definition revisions must agree."""

from __future__ import annotations

import pytest

from remediation.providers.platform import PlatformError, Release
from tests.contracts.implementations import DEPLOYS, DeploysHarness, params


@pytest.fixture(params=params(DEPLOYS))
def deploys(request: pytest.FixtureRequest) -> DeploysHarness:
    harness: DeploysHarness = request.param.build(request)
    return harness


def by_version(releases: list[Release], version: str) -> Release:
    (found,) = [r for r in releases if r.version == version]
    return found


async def test_releases_are_newest_first_with_one_current_and_the_one_before_it_previous(
    deploys: DeploysHarness,
) -> None:
    releases = await deploys.adapter.releases()
    assert [r.version for r in releases][:2] == [deploys.current_version, deploys.previous_version]
    assert [r.state for r in releases].count("current") == 1
    assert by_version(releases, deploys.current_version).state == "current"
    assert by_version(releases, deploys.previous_version).state == "previous"
    assert all(r.created_at.tzinfo is not None for r in releases)
    assert len({r.id for r in releases}) == len(releases)


async def test_rollback_promotes_the_previous_release_on_the_platform(deploys: DeploysHarness) -> None:
    previous = by_version(await deploys.adapter.releases(), deploys.previous_version)
    current = await deploys.adapter.rollback(previous.id)
    assert (current.id, current.version, current.state) == (previous.id, deploys.previous_version, "current")
    assert deploys.observe_current() == deploys.previous_version
    listed = await deploys.adapter.releases()
    assert by_version(listed, deploys.previous_version).state == "current"
    assert [r.state for r in listed].count("current") == 1


async def test_rolling_back_twice_to_the_same_release_is_a_no_op(deploys: DeploysHarness) -> None:
    previous = by_version(await deploys.adapter.releases(), deploys.previous_version)
    await deploys.adapter.rollback(previous.id)
    again = await deploys.adapter.rollback(previous.id)
    assert again.id == previous.id and again.state == "current"
    assert deploys.observe_current() == deploys.previous_version


async def test_a_rollback_is_undone_by_promoting_the_newer_release_again(deploys: DeploysHarness) -> None:
    releases = await deploys.adapter.releases()
    newer = by_version(releases, deploys.current_version)
    await deploys.adapter.rollback(by_version(releases, deploys.previous_version).id)
    assert (await deploys.adapter.rollback(newer.id)).id == newer.id
    assert deploys.observe_current() == deploys.current_version


async def test_an_unknown_release_is_a_platform_error_and_nothing_changes(deploys: DeploysHarness) -> None:
    with pytest.raises(PlatformError):
        await deploys.adapter.rollback(deploys.unknown_release)
    assert deploys.observe_current() == deploys.current_version
