"""SentryApi.issues (the Errors Protocol) against a local fake of Sentry's REST API: pagination, rate limits."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from remediation.providers.clock import VirtualClock
from remediation.providers.platform import PlatformError
from remediation.providers.saas_client import NotConfigured, RateLimited
from remediation.providers.sentry_api import SentryApi
from tests.helpers.fake_saas import Answer
from tests.helpers.fake_sentry_api import FakeSentryApi
from tests.helpers.fake_vercel import clock_ms

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
START_MS = int(START.timestamp() * 1000)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(START)


@pytest.fixture
def fake(clock: VirtualClock) -> Iterator[FakeSentryApi]:
    with FakeSentryApi(page_size=2, now_ms=clock_ms(clock)) as server:
        yield server


def api(fake: FakeSentryApi, clock: VirtualClock, **kwargs: object) -> SentryApi:
    return SentryApi(fake.token, org=fake.org, project=fake.project, base_url=fake.url, clock=clock,
                     **kwargs)  # type: ignore[arg-type]


def seed(fake: FakeSentryApi, count: int) -> None:
    for n in range(count):
        fake.add_issue(f"TypeError: boom {n}", last_seen_ms=START_MS - n * 60_000, count=10 + n)


async def test_every_page_is_read_by_following_the_link_header_while_results_is_true(
        fake: FakeSentryApi, clock: VirtualClock) -> None:
    seed(fake, 5)
    issues = await api(fake, clock).issues()
    assert [i.title for i in issues] == [f"TypeError: boom {n}" for n in range(5)]
    pages = fake.calls("GET", "/issues/")
    assert [p.query.get("cursor") for p in pages] == [None, ["0:2:0"], ["0:4:0"]]  # the third page says no more
    assert pages[0].query["project"] == ["4506"] and pages[0].query["query"] == ["is:unresolved"]
    first = issues[0]
    assert first.count == 10 and first.status == "unresolved" and first.last_seen == START


async def test_issues_since_a_time_ask_sentry_for_that_window_and_keep_only_what_was_seen_in_it(
        fake: FakeSentryApi, clock: VirtualClock) -> None:
    seed(fake, 5)
    fake.add_issue("Old resolved", last_seen_ms=START_MS, status="resolved")
    issues = await api(fake, clock).issues(since=START - timedelta(minutes=2))
    assert [i.title for i in issues] == ["TypeError: boom 0", "TypeError: boom 1", "TypeError: boom 2"]
    query = fake.calls("GET", "/issues/")[0].query
    assert query["start"] == ["2026-03-01T11:58:00Z"] and query["end"] == ["2026-03-01T12:00:00Z"]


async def test_the_numeric_project_id_is_looked_up_once(fake: FakeSentryApi, clock: VirtualClock) -> None:
    seed(fake, 1)
    adapter = api(fake, clock)
    await adapter.issues()
    await adapter.issues()
    assert len(fake.calls("GET", f"/projects/{fake.org}/{fake.project}/")) == 1


async def test_pages_are_bounded(fake: FakeSentryApi, clock: VirtualClock) -> None:
    seed(fake, 9)
    issues = await api(fake, clock, max_pages=2).issues()
    assert len(issues) == 4 and len(fake.calls("GET", "/issues/")) == 2


async def test_a_429_is_waited_out_per_retry_after_then_the_read_goes_on(fake: FakeSentryApi,
                                                                        clock: VirtualClock) -> None:
    seed(fake, 3)
    fake.fail_next(429, {"detail": "You are attempting to use this endpoint too frequently."},
                   {"Retry-After": "2"}, times=2)
    issues = await api(fake, clock).issues()
    assert len(issues) == 3 and clock.slept == [2.0, 2.0]


async def test_a_429_beyond_the_wait_bound_makes_the_tracker_unavailable_without_waiting(
        fake: FakeSentryApi, clock: VirtualClock) -> None:
    seed(fake, 1)
    fake.fail_next(429, {"detail": "Too many requests"}, {"Retry-After": "120"}, times=5)
    with pytest.raises(RateLimited, match=r"rate limited \(HTTP 429, Retry-After 120s; waited 0s of our 10s "
                                          r"bound\): unavailable"):
        await api(fake, clock, max_wait_s=10.0).issues()
    assert clock.slept == []


async def test_a_429_without_retry_after_is_unavailable_at_once(fake: FakeSentryApi, clock: VirtualClock) -> None:
    fake.fail_next(429, {"detail": "Too many requests"})
    with pytest.raises(RateLimited, match="no Retry-After"):
        await api(fake, clock).issues()


async def test_a_next_link_to_another_origin_is_not_followed_with_our_token(fake: FakeSentryApi,
                                                                            clock: VirtualClock) -> None:
    seed(fake, 1)
    adapter = api(fake, clock)
    await adapter.project_id()
    fake.fail_next(200, [{"id": "1", "title": "x", "count": "1"}], {
        "Link": '<https://evil.example/api/0/x?cursor=0:1:0>; rel="next"; results="true"; cursor="0:1:0"'})
    with pytest.raises(PlatformError, match="refusing to follow a next link to another origin"):
        await adapter.issues()
    assert all(r.path.startswith("/api/0/") for r in fake.requests)


async def test_refusals_and_missing_settings_are_platform_errors_in_sentrys_words(fake: FakeSentryApi,
                                                                                  clock: VirtualClock) -> None:
    with pytest.raises(PlatformError, match=r"sentry GET /api/0/projects/kamkm/nope/: HTTP 404: The requested"):
        await SentryApi(fake.token, org=fake.org, project="nope", base_url=fake.url, clock=clock).issues()
    with pytest.raises(PlatformError, match="HTTP 401: Invalid token") as raised:
        await SentryApi("sntrys_WRONG_secret", org=fake.org, project=fake.project, base_url=fake.url,
                        clock=clock).issues()
    assert "WRONG_secret" not in str(raised.value)
    with pytest.raises(NotConfigured, match="REMEDIATE_SENTRY_ORG"):
        await SentryApi(fake.token, org=None, project=fake.project, base_url=fake.url, clock=clock).issues()


async def test_a_page_that_is_not_a_list_is_refused(fake: FakeSentryApi, clock: VirtualClock) -> None:
    adapter = api(fake, clock)
    await adapter.project_id()
    fake.faults.append(Answer(200, {"detail": "maintenance"}))
    with pytest.raises(PlatformError, match="not a list"):
        await adapter.issues()
