"""Errors contract: the error tracker lists the unresolved issues with their event counts and when they were last
seen, keeps to a time window when asked, and an unreadable tracker raises (callers turn that into ``unknown``,
never into "no errors"). The simulated tracker and Sentry's REST API (paged, through the Link header) must agree."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from remediation.providers.platform import PlatformError
from tests.contracts.implementations import ERRORS, params
from tests.contracts.saaskit import ErrorsHarness


@pytest.fixture(params=params(ERRORS))
def errors(request: pytest.FixtureRequest) -> ErrorsHarness:
    harness: ErrorsHarness = request.param.build(request)
    return harness


SEEDED = ("TypeError: services.map is not a function", "DatabaseError: connection terminated",
          "RangeError: Invalid time value")


async def test_seeded_issues_are_listed_unresolved_with_their_counts(errors: ErrorsHarness) -> None:
    now = datetime.now(UTC)
    for n, title in enumerate(SEEDED):
        errors.seed(title, n + 2, now - timedelta(minutes=n))
    issues = {i.title: i for i in await errors.adapter.issues() if i.title in SEEDED}
    assert set(issues) == set(SEEDED)
    for n, title in enumerate(SEEDED):
        issue = issues[title]
        assert (issue.status, issue.count) == ("unresolved", n + 2)
        assert issue.last_seen is not None and issue.last_seen.tzinfo is not None
        assert abs((issue.last_seen - (now - timedelta(minutes=n))).total_seconds()) < 1
    assert len({i.id for i in issues.values()}) == len(SEEDED)


async def test_since_keeps_only_issues_seen_in_the_window(errors: ErrorsHarness) -> None:
    now = datetime.now(UTC)
    errors.seed(SEEDED[0], 1, now - timedelta(minutes=1))
    errors.seed(SEEDED[1], 1, now - timedelta(hours=3))
    recent = {i.title for i in await errors.adapter.issues(since=now - timedelta(minutes=30))}
    assert SEEDED[0] in recent and SEEDED[1] not in recent


async def test_an_unreadable_tracker_raises_instead_of_answering_no_errors(errors: ErrorsHarness) -> None:
    with pytest.raises(PlatformError):
        await errors.broken.issues()
