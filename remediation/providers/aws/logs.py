"""Logs on AWS: kamkmserve's stdout as CloudWatch Logs events (the awslogs driver ships one line per event).

``FilterLogEvents`` returns events oldest first, a page at a time; the Protocol wants the *newest* ``limit`` lines
since ``since``, oldest first, as the simulated platform gives them. So the pages are read to the end (bounded by
``max_events``) and the tail kept. Without ``since`` the window is the last ``default_window_s`` seconds: a whole
log group is never scanned. Only plain filter terms are used (moto matches ``{``/``?``/``[`` patterns wrongly,
docs/reference/integrations.md §3.3); the app's lines are parsed with the same parser as every other log source.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from remediation.providers.aws.session import AwsError, AwsSession
from remediation.providers.logparse import parse_lines
from remediation.providers.platform import LogLine, PlatformError


class CloudWatchLogs:
    """:class:`~remediation.providers.capabilities.Logs` over one log group (optionally one stream prefix)."""

    def __init__(self, session: AwsSession, log_group: str, *, stream_prefix: str | None = None,
                 default_window_s: float = 3600.0, max_events: int = 20_000) -> None:
        self.session = session
        self.log_group = log_group
        self.stream_prefix = stream_prefix
        self.default_window_s = default_window_s
        self.max_events = max_events

    async def lines(self, since: datetime | None = None, limit: int = 500) -> list[LogLine]:
        if limit <= 0:
            return []
        start = since or datetime.now(UTC) - timedelta(seconds=self.default_window_s)
        params: dict[str, Any] = {"logGroupName": self.log_group, "startTime": _ms(start)}
        if self.stream_prefix:
            params["logStreamNamePrefix"] = self.stream_prefix
        messages: list[tuple[int, str, str]] = []
        token: str | None = None
        while len(messages) < self.max_events:
            page = {**params, **({"nextToken": token} if token else {})}
            try:
                body = await self.session.call("logs", "filter_log_events", **page)
            except AwsError as exc:
                if exc.is_("ResourceNotFoundException"):
                    raise PlatformError(f"CloudWatch log group {self.log_group!r} does not exist") from exc
                raise
            messages.extend((int(e.get("timestamp", 0)), str(e.get("eventId", "")), str(e.get("message", "")))
                            for e in body.get("events", []))
            next_token = body.get("nextToken")
            if not next_token or next_token == token or not body.get("events"):
                break
            token = next_token
        messages.sort(key=lambda m: m[0])  # several streams interleave: order by event time (stable within one)
        return parse_lines(m[2] for m in messages)[-limit:]


def _ms(moment: datetime) -> int:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return int(aware.timestamp() * 1000)
