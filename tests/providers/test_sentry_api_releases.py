"""Sentry event counts, releases and deploys, and the deploy correlation the investigate phase uses."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from remediation.providers.clock import VirtualClock
from remediation.providers.sentry_api import SentryApi
from remediation.providers.sentry_deploys import correlate
from tests.helpers.fake_sentry_api import FakeSentryApi
from tests.helpers.fake_vercel import clock_ms

SPIKE = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SPIKE_MS = int(SPIKE.timestamp() * 1000)
MIN_MS = 60_000


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(SPIKE)


@pytest.fixture
def fake(clock: VirtualClock) -> Iterator[FakeSentryApi]:
    with FakeSentryApi(now_ms=clock_ms(clock)) as server:
        yield server


@pytest.fixture
def api(fake: FakeSentryApi, clock: VirtualClock) -> SentryApi:
    return SentryApi(fake.token, org=fake.org, project=fake.project, base_url=fake.url, clock=clock)


async def test_event_counts_are_buckets_of_received_events(fake: FakeSentryApi, api: SentryApi) -> None:
    base = int(SPIKE.timestamp())
    fake.stats = [(base - 30, 1), (base - 20, 0), (base - 10, 42)]
    counts = await api.event_counts(SPIKE - timedelta(seconds=25), SPIKE)
    assert counts.available and counts.total == 42
    assert counts.points == ((SPIKE - timedelta(seconds=20), 0), (SPIKE - timedelta(seconds=10), 42))
    query = fake.calls("GET", "/stats/")[0].query
    assert query["stat"] == ["received"] and query["resolution"] == ["10s"]


async def test_unreadable_stats_are_unavailable_with_the_reason_never_zero(fake: FakeSentryApi,
                                                                           api: SentryApi) -> None:
    fake.fail_next(500, {"detail": "Internal Error"})
    counts = await api.event_counts(SPIKE - timedelta(minutes=5))
    assert not counts.available and "HTTP 500: Internal Error" in counts.reason and counts.total == 0


async def test_releases_carry_their_last_deploy(fake: FakeSentryApi, api: SentryApi) -> None:
    fake.add_release("1.4.2", created_ms=SPIKE_MS - 120 * MIN_MS, deploys_ms=(SPIKE_MS - 110 * MIN_MS,))
    fake.add_release("1.5.0", created_ms=SPIKE_MS - 12 * MIN_MS, deploys_ms=(SPIKE_MS - 7 * MIN_MS,))
    listing = await api.releases()
    assert [r.version for r in listing.releases] == ["1.5.0", "1.4.2"]
    assert listing.releases[0].last_deploy is not None
    assert listing.releases[0].last_deploy.at == SPIKE - timedelta(minutes=7)


async def test_a_release_deployed_minutes_before_the_spike_is_named_with_how_long_before(
        fake: FakeSentryApi, api: SentryApi) -> None:
    fake.add_release("1.4.2", created_ms=SPIKE_MS - 120 * MIN_MS, deploys_ms=(SPIKE_MS - 110 * MIN_MS,))
    fake.add_release("1.5.0", created_ms=SPIKE_MS - 12 * MIN_MS, deploys_ms=(SPIKE_MS - 7 * MIN_MS,))
    found = await correlate(api, SPIKE, window_s=3600)
    assert found.available and found.found
    assert (found.release, found.minutes_before, found.environment, found.kind) == ("1.5.0", 7.0, "production",
                                                                                    "deployed")
    assert found.summary == "release 1.5.0 was deployed to production 7 min before the spike"
    assert fake.calls("GET", "/deploys/") == []  # one deploy each, known from lastDeploy: no extra requests


async def test_a_redeploy_after_the_spike_does_not_hide_the_deploy_before_it(fake: FakeSentryApi,
                                                                             api: SentryApi) -> None:
    fake.add_release("1.5.0", created_ms=SPIKE_MS - 30 * MIN_MS,
                     deploys_ms=(SPIKE_MS - 20 * MIN_MS, SPIKE_MS + 5 * MIN_MS))
    found = await correlate(api, SPIKE, window_s=3600)
    assert (found.release, found.minutes_before) == ("1.5.0", 20.0)
    assert len(fake.calls("GET", "/releases/1.5.0/deploys/")) == 1


async def test_no_deploy_in_the_window_is_said_plainly_and_other_environments_are_ignored(
        fake: FakeSentryApi, api: SentryApi) -> None:
    fake.add_release("1.4.2", created_ms=SPIKE_MS - 300 * MIN_MS, deploys_ms=(SPIKE_MS - 290 * MIN_MS,))
    fake.add_release("1.5.0-rc1", created_ms=SPIKE_MS - 10 * MIN_MS, deploys_ms=(SPIKE_MS - 5 * MIN_MS,),
                     environment="preview")
    found = await correlate(api, SPIKE, window_s=3600, environment="production")
    assert found.available and not found.found
    assert found.summary == "no release deployed in the 60 min before the spike"


async def test_a_release_without_recorded_deploys_counts_by_its_release_date(fake: FakeSentryApi,
                                                                             api: SentryApi) -> None:
    fake.add_release("1.5.0", created_ms=SPIKE_MS - 15 * MIN_MS, released_ms=SPIKE_MS - 14 * MIN_MS)
    found = await correlate(api, SPIKE)
    assert found.summary == "release 1.5.0 was released 14 min before the spike" and found.kind == "released"


async def test_no_release_at_all_is_the_apps_reality_and_is_reported_as_such(api: SentryApi) -> None:
    found = await correlate(api, SPIKE)
    assert found.available and not found.found
    assert "no release recorded in Sentry" in found.summary


async def test_unreadable_releases_make_the_correlation_unavailable_not_negative(fake: FakeSentryApi,
                                                                                 api: SentryApi) -> None:
    fake.fail_next(429, {"detail": "slow down"}, {"Retry-After": "600"})
    found = await correlate(api, SPIKE)
    assert not found.available and not found.found
    assert found.summary.startswith("deploy history unavailable: ") and "429" in found.reason
