"""Parse kamkmserve's log output: one JSON object per line, mixed with non-JSON start-up lines."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime

from remediation.providers.platform import LogLine

_REQUEST_FIELDS = ("requestId", "path", "method", "userAgent", "ip")


def parse_line(raw: str) -> LogLine | None:
    """A LogLine, or None for anything that is not one of the app's JSON log objects."""
    text = raw.strip()
    if not text.startswith("{"):
        return None
    try:
        obj = json.loads(text)
    except ValueError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("message"), str):
        return None
    context = obj.get("context")
    return LogLine(
        timestamp=_timestamp(obj.get("timestamp")),
        level=str(obj.get("level", "")),
        message=obj["message"],
        context=context if isinstance(context, dict) else None,
        request={k: str(obj[k]) for k in _REQUEST_FIELDS if k in obj},
        raw=raw.rstrip("\n"),
    )


def parse_lines(lines: Iterable[str]) -> list[LogLine]:
    return [parsed for line in lines if (parsed := parse_line(line)) is not None]


def _timestamp(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
