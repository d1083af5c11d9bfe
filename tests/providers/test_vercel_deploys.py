"""VercelDeploys against a local fake of Vercel's REST API: production deployments, rollback and promote."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from remediation.providers.clock import VirtualClock
from remediation.providers.platform import PlatformError
from remediation.providers.saas_client import NotConfigured
from remediation.providers.vercel import VercelApi, VercelDeploys
from tests.helpers.fake_vercel import FakeVercel, clock_ms

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HOUR_MS = 3_600_000


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(START)


@pytest.fixture
def fake(clock: VirtualClock) -> Iterator[FakeVercel]:
    with FakeVercel(now_ms=clock_ms(clock), team_id="team_kamkm") as server:
        yield server


def seeded(fake: FakeVercel) -> tuple[str, str, str]:
    now = int(START.timestamp() * 1000)
    old = fake.deploy("1.4.1", at_ms=now - 3 * HOUR_MS)
    good = fake.deploy("1.4.2", at_ms=now - 2 * HOUR_MS)
    bad = fake.deploy("1.5.0", at_ms=now - 600_000)
    return old, good, bad


def deploys(fake: FakeVercel, clock: VirtualClock, **kwargs: object) -> VercelDeploys:
    api = VercelApi(fake.token, project_id=fake.project_id, team_id=fake.team_id, base_url=fake.url, clock=clock)
    return VercelDeploys(api, **kwargs)  # type: ignore[arg-type]


async def test_releases_are_the_production_deployments_newest_first_with_current_and_previous(
        fake: FakeVercel, clock: VirtualClock) -> None:
    old, good, bad = seeded(fake)
    fake.deploy("1.6.0-rc", at_ms=int(START.timestamp() * 1000) - 60_000, state="ERROR", production=False)
    releases = await deploys(fake, clock).releases()
    assert [r.state for r in releases] == ["error", "current", "previous", "superseded"]
    assert [r.id for r in releases[1:]] == [bad, good, old]
    current = releases[1]
    assert current.version == "150abcd" and current.promoted_at is not None
    assert releases[0].promoted_at is None  # a failed build never served production
    assert all(call.query.get("teamId") == ["team_kamkm"] for call in fake.calls())


async def test_rollback_points_production_at_the_earlier_deployment_through_instant_rollback(
        fake: FakeVercel, clock: VirtualClock) -> None:
    _, good, bad = seeded(fake)
    release = await deploys(fake, clock).rollback(good)
    assert release.id == good and release.state == "current"
    assert release.promoted_at == START  # promoted when the rollback was requested
    assert fake.production == good
    assert [c.path for c in fake.calls("POST")] == [f"/v1/projects/{fake.project_id}/rollback/{good}"]
    after = await deploys(fake, clock).releases()
    assert next(r for r in after if r.id == bad).state == "previous"


async def test_rollback_is_idempotent_and_never_asks_vercel_twice(fake: FakeVercel, clock: VirtualClock) -> None:
    _, good, _ = seeded(fake)
    adapter = deploys(fake, clock)
    first = await adapter.rollback(good)
    second = await adapter.rollback(good)
    assert first.id == second.id == good
    assert len(fake.calls("POST")) == 1


async def test_undoing_a_rollback_promotes_the_newer_deployment_again(fake: FakeVercel, clock: VirtualClock) -> None:
    _, good, bad = seeded(fake)
    adapter = deploys(fake, clock)
    await adapter.rollback(good)
    release = await adapter.rollback(bad)
    assert release.id == bad and fake.production == bad
    assert fake.calls("POST")[-1].path == f"/v10/projects/{fake.project_id}/promote/{bad}"


async def test_an_asynchronous_move_is_followed_until_production_serves_the_target(
        fake: FakeVercel, clock: VirtualClock) -> None:
    _, good, _ = seeded(fake)
    fake.alias_pending_reads = 3
    release = await deploys(fake, clock, poll_s=2.0, settle_s=30.0).rollback(good)
    assert release.id == good
    assert clock.slept == [2.0, 2.0, 2.0]  # bounded poll on the virtual clock: no real waiting


async def test_a_move_that_does_not_settle_in_time_fails_and_a_retry_waits_instead_of_asking_again(
        fake: FakeVercel, clock: VirtualClock) -> None:
    _, good, bad = seeded(fake)
    fake.alias_pending_reads = 100
    adapter = deploys(fake, clock, poll_s=5.0, settle_s=10.0)
    with pytest.raises(PlatformError, match=rf"production still serves {bad} 10s after asking for {good}.*pending"):
        await adapter.rollback(good)
    fake.alias_pending_reads = 0
    fake._pending_left = 0
    release = await adapter.rollback(good)  # the request is in flight: wait for it, do not send a second one
    assert release.id == good
    assert len(fake.calls("POST")) == 1


async def test_a_deployment_that_never_became_ready_cannot_be_rolled_back_to(
        fake: FakeVercel, clock: VirtualClock) -> None:
    seeded(fake)
    broken = fake.deploy("1.3.9", at_ms=int(START.timestamp() * 1000) - 5 * HOUR_MS, state="ERROR", production=False)
    with pytest.raises(PlatformError, match=rf"deployment {broken} is not READY \(ERROR\)"):
        await deploys(fake, clock).rollback(broken)
    assert fake.calls("POST") == []


async def test_an_unknown_deployment_is_a_platform_error_in_vercels_words(fake: FakeVercel,
                                                                         clock: VirtualClock) -> None:
    seeded(fake)
    with pytest.raises(PlatformError, match=r"vercel GET /v13/deployments/dpl_nope: HTTP 404: not_found: Deployment"):
        await deploys(fake, clock).rollback("dpl_nope")


async def test_a_refused_token_is_reported_without_the_token(fake: FakeVercel, clock: VirtualClock) -> None:
    seeded(fake)
    api = VercelApi("vercel-wrong-token-SECRET", project_id=fake.project_id, team_id=fake.team_id,
                    base_url=fake.url, clock=clock)
    with pytest.raises(PlatformError, match=r"HTTP 403: forbidden: Not authorized") as raised:
        await VercelDeploys(api).releases()
    assert "SECRET" not in str(raised.value)


async def test_missing_configuration_is_named_before_anything_is_sent(fake: FakeVercel, clock: VirtualClock) -> None:
    with pytest.raises(NotConfigured, match="REMEDIATE_VERCEL_TOKEN"):
        await VercelDeploys(VercelApi(None, project_id="prj_x", base_url=fake.url, clock=clock)).releases()
    with pytest.raises(NotConfigured, match="REMEDIATE_VERCEL_PROJECT_ID"):
        await VercelDeploys(VercelApi("t", project_id=None, base_url=fake.url, clock=clock)).releases()
    assert fake.calls() == []


async def test_a_rate_limited_answer_is_waited_out_within_the_bound(fake: FakeVercel, clock: VirtualClock) -> None:
    seeded(fake)
    fake.fail_next(429, {"error": {"code": "rate_limited", "message": "Rate limit exceeded"}},
                   {"Retry-After": "3"}, times=2)
    releases = await deploys(fake, clock).releases()
    assert releases and clock.slept == [3.0, 3.0]
