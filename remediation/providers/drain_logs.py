"""Logs on Vercel through a Log Drain: the lines the receiver's ``POST /logs/vercel`` kept in the store.

Vercel delivers each runtime log entry with the app's printed line as its ``message`` (for kamkmserve the JSON
object text, docs/reference/kamkmserve.md §3.1). Those are parsed by the same parser every log source uses;
drain entries that are not one of the app's JSON lines (request logs, the Next.js banner) are skipped. A message
holding several lines yields each of them.

Vercel delivers at least once: an entry seen twice (same drain ``id``) is returned once. A line is placed in the
window by its own timestamp, falling back to the drain's; rows are pre-selected by the drain's timestamp with
``skew_s`` of slack between the two clocks.

No row at all for the drain means the drain has never delivered (or nothing in the retention period): that is a
:class:`PlatformError`, so the runbooks report the logs as unavailable, never as empty and healthy.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from remediation.providers.capabilities import Clock, Logs
from remediation.providers.clock import RealClock
from remediation.providers.file_logs import app_line
from remediation.providers.platform import LogLine, PlatformError
from remediation.settings import Settings
from remediation.store import Store
from remediation.store.logs import StoredLogLine

VERCEL_DRAIN = "vercel-drain"
_PAGE = 1000


class DrainLogs:
    """:class:`~remediation.providers.capabilities.Logs` over the drained lines of one ``source``."""

    def __init__(self, store: Store, *, source: str = VERCEL_DRAIN, clock: Clock | None = None,
                 default_window_s: float = 3600.0, skew_s: float = 60.0, retention_s: float = 6 * 3600.0) -> None:
        self.store = store
        self.source = source
        self.clock: Clock = clock or RealClock()
        self.default_window_s = default_window_s
        self.skew = timedelta(seconds=skew_s)
        self.retention_s = retention_s

    async def lines(self, since: datetime | None = None, limit: int = 500) -> list[LogLine]:
        if limit <= 0:
            return []
        start = since if since is not None else self.clock.now() - timedelta(seconds=self.default_window_s)
        start = start if start.tzinfo is not None else start.replace(tzinfo=UTC)
        return await asyncio.to_thread(self._read, start, limit)

    def _read(self, since: datetime, limit: int) -> list[LogLine]:
        if self.store.newest_received_at(self.source) is None:
            raise PlatformError(f"no line from the log drain ({self.source}) is kept (retention "
                                f"{self.retention_s / 3600:g} h): the drain is not delivering to the receiver's "
                                "/logs/vercel, or its signature secret does not match REMEDIATE_VERCEL_DRAIN_SECRET")
        found: list[tuple[datetime, int, LogLine]] = []
        seen: set[str] = set()
        before: tuple[datetime, int] | None = None
        while len(found) < limit:
            rows = self.store.log_lines(self.source, since - self.skew, _PAGE, before=before)
            for row in reversed(rows):
                found.extend(_app_lines(row, since, seen))
            if len(rows) < _PAGE:
                break
            before = (rows[0].logged_at, rows[0].id)
        found.sort(key=lambda item: (item[0], item[1]))
        return [line for _, _, line in found[-limit:]]


def build_drain_logs(settings: Settings, store: Store, clock: Clock | None = None) -> Logs:
    """The ``logs = "vercel-drain"`` capability: what ``POST /logs/vercel`` stored."""
    return DrainLogs(store, clock=clock, retention_s=settings.log_drain_retention_s)


def _app_lines(row: StoredLogLine, since: datetime, seen: set[str]) -> list[tuple[datetime, int, LogLine]]:
    entry_id = row.raw.get("id")
    if isinstance(entry_id, str | int) and not isinstance(entry_id, bool):
        key = str(entry_id)
        if key in seen:
            return []
        seen.add(key)
    out: list[tuple[datetime, int, LogLine]] = []
    for text in row.message.splitlines():
        line = app_line(text)
        if line is None:
            continue
        at = line.timestamp or row.logged_at
        if at >= since:
            out.append((at, row.id, line if line.timestamp else line.model_copy(update={"timestamp": at})))
    return out
