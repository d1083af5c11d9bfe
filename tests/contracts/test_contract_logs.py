"""Logs contract: the app's JSON lines come back byte for byte, oldest first, the newest ``limit`` of them, from
``since`` on. The AWS implementation reads the simulator's own stdout shipped into CloudWatch, so both read the
same bytes and must parse them the same way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from remediation.providers.logparse import parse_lines
from tests.contracts.implementations import LOGS, LogsHarness, params


@pytest.fixture(params=params(LOGS))
def logs(request: pytest.FixtureRequest) -> LogsHarness:
    harness: LogsHarness = request.param.build(request)
    return harness


def stamps(harness_lines: list[str]) -> list[datetime]:
    return [line.timestamp for line in parse_lines(harness_lines) if line.timestamp is not None]


async def test_the_newest_lines_come_back_oldest_first_exactly_as_printed(logs: LogsHarness) -> None:
    printed = logs.printed()
    fifth_newest = sorted(stamps(printed))[-5]
    lines = await logs.adapter.lines(limit=5)
    assert len(lines) == 5
    assert all(line.raw in set(logs.printed()) for line in lines)
    times = [line.timestamp for line in lines]
    assert all(t is not None for t in times)
    assert times == sorted(times)  # type: ignore[type-var]
    assert all(t is not None and t >= fifth_newest for t in times)
    assert all(line.message and line.level for line in lines)


async def test_since_keeps_the_lines_printed_from_then_on(logs: LogsHarness) -> None:
    printed = logs.printed()
    times = sorted(stamps(printed))
    since = times[len(times) // 2]
    expected = {line.raw for line in parse_lines(printed) if line.timestamp and line.timestamp >= since}
    lines = await logs.adapter.lines(since=since, limit=5000)
    assert all(line.timestamp is not None and line.timestamp >= since for line in lines)
    assert expected <= {line.raw for line in lines}


async def test_the_same_bytes_parse_to_the_same_lines(logs: LogsHarness) -> None:
    lines = await logs.adapter.lines(limit=20)
    assert lines == parse_lines([line.raw for line in lines])


async def test_nothing_comes_back_from_the_future_or_with_a_zero_limit(logs: LogsHarness) -> None:
    assert await logs.adapter.lines(since=datetime.now(UTC) + timedelta(hours=1)) == []
    assert await logs.adapter.lines(limit=0) == []
