"""CloudWatch Logs: pages are read to the end and the newest ``limit`` lines kept, oldest first; start-up lines
that are not the app's JSON are skipped; a missing log group says so."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from botocore.stub import ANY

from remediation.providers.aws.logs import CloudWatchLogs
from remediation.providers.platform import PlatformError
from tests.providers.aws.stubkit import T0, offline_session, stubbed


def event(n: int, message: str | None = None) -> dict[str, object]:
    at = T0 + timedelta(seconds=n)
    text = message or json.dumps({"timestamp": at.isoformat().replace("+00:00", "Z"), "level": "warn",
                                  "message": "Slow request detected", "context": {"duration": 1200 + n}})
    return {"logStreamName": "web/0", "timestamp": int(at.timestamp() * 1000), "message": text,
            "ingestionTime": int(at.timestamp() * 1000) + 500, "eventId": str(n)}


async def test_every_page_is_read_and_the_newest_lines_kept_oldest_first() -> None:
    session = offline_session()
    start = {"logGroupName": "/ecs/web", "startTime": int(T0.timestamp() * 1000)}
    with stubbed(session, "logs") as stub:
        stub.add_response("filter_log_events", {"events": [event(0, "> kamkmserve@0.1.0 start"), event(1), event(2)],
                                                "nextToken": "p2"}, start)
        stub.add_response("filter_log_events", {"events": [event(3), event(4)]}, {**start, "nextToken": "p2"})
        lines = await CloudWatchLogs(session, "/ecs/web").lines(since=T0, limit=3)
    assert [line.context["duration"] for line in lines if line.context] == [1202, 1203, 1204]
    assert all(line.message == "Slow request detected" for line in lines)


async def test_without_since_only_the_recent_window_is_read() -> None:
    session = offline_session()
    with stubbed(session, "logs") as stub:
        stub.add_response("filter_log_events", {"events": []}, {"logGroupName": "/ecs/web", "startTime": ANY})
        assert await CloudWatchLogs(session, "/ecs/web", default_window_s=600).lines() == []


async def test_the_window_starts_default_window_s_before_now() -> None:
    session = offline_session()
    seen: list[int] = []
    with stubbed(session, "logs") as stub:
        stub.add_response("filter_log_events", {"events": []}, {"logGroupName": "/ecs/web", "startTime": ANY})
        session.client("logs").meta.events.register(
            "provide-client-params.logs.FilterLogEvents", lambda params, **_: seen.append(params["startTime"]))
        before = datetime.now(UTC)
        await CloudWatchLogs(session, "/ecs/web", default_window_s=600).lines()
    assert abs(seen[0] / 1000 - (before - timedelta(seconds=600)).timestamp()) < 5


async def test_a_missing_log_group_is_named() -> None:
    session = offline_session()
    with stubbed(session, "logs") as stub:
        stub.add_client_error("filter_log_events", service_error_code="ResourceNotFoundException",
                              http_status_code=400)
        with pytest.raises(PlatformError, match="log group '/ecs/web' does not exist"):
            await CloudWatchLogs(session, "/ecs/web").lines(since=T0)
