"""kamkmserve's log output for the log-source tests: the captured runs, and bursts printed in the app's exact format.

The app prints ``JSON.stringify({timestamp, level, message, context})`` (docs/reference/kamkmserve.md §3.1): keys in
that order, no spaces, ISO-8601 milliseconds with ``Z``, ``context`` omitted when undefined. :func:`app_line`
prints the same bytes (tests/providers/test_file_logs.py checks it against every captured line).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "kamkmserve"
CAPTURED = ("logs-default.stdout", "logs-default.stderr", "logs-avreject.stdout", "logs-avreject.stderr")
DB_DOWN = "Error connecting to database: TypeError: fetch failed"  # what the real app logged, database unreachable


def captured(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def captured_json(name: str) -> list[dict[str, Any]]:
    """The JSON lines of a captured stream, decoded independently of the parser under test."""
    return [json.loads(line) for line in captured(name).decode().splitlines() if line.startswith("{")]


def iso(at: datetime) -> str:
    at = at.astimezone(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def app_line(at: datetime, level: str, message: str, context: dict[str, Any] | None = None) -> str:
    entry: dict[str, Any] = {"timestamp": iso(at), "level": level, "message": message}
    if context is not None:
        entry["context"] = context
    return json.dumps(entry, separators=(",", ":"), ensure_ascii=False)


def rejected(at: datetime, error: str) -> str:
    return app_line(at, "warn", "Upload: validation failed", {"duration": 3, "error": error})


def audit_failed(at: datetime, error: str = DB_DOWN) -> str:
    return app_line(at, "error", "Failed to write audit log", {"error": error})


def burst(start: datetime, *, malware: int = 0, exe: int = 0, step_ms: int = 20) -> list[tuple[str, str]]:
    """(stream, line) pairs of an upload burst with the database down, as the app prints it: each rejection on
    stderr, then its failing audit write. Malware first, then ``.exe`` refusals."""
    out: list[tuple[str, str]] = []
    errors = ["Malware scan failed: simulated-detection"] * malware + ["File extension not allowed: .exe"] * exe
    for i, error in enumerate(errors):
        at = start + timedelta(milliseconds=step_ms * i)
        out += [("stderr", rejected(at, error)), ("stderr", audit_failed(at + timedelta(milliseconds=5)))]
    return out


def numbered(start: datetime, count: int, first: int = 0) -> list[str]:
    """``count`` info lines one ms apart whose ``context.seq`` numbers them (to prove nothing lost or repeated)."""
    return [app_line(start + timedelta(milliseconds=first + i), "info", "Upload: validated",
                     {"duration": 1, "mime": "image/png", "ext": ".png", "bytes": 68, "seq": first + i})
            for i in range(count)]
