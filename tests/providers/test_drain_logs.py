"""The drained-log store functions and DrainLogs: what a Vercel Log Drain delivered, read back as the app's lines."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from remediation.providers.clock import VirtualClock
from remediation.providers.drain_logs import VERCEL_DRAIN, DrainLogs, build_drain_logs
from remediation.providers.platform import PlatformError
from remediation.runbooks.suspicious_upload import parse_upload_logs
from remediation.settings import Settings
from remediation.store import Store
from remediation.store.logs import LogEntryIn
from tasks.database_errors.identify import parse_db_logs
from tests.helpers.applog import CAPTURED, app_line, burst, captured, captured_json, numbered

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
RUN = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'remediate.db'}")
    s.migrate()
    yield s
    s.dispose()


def entry(at: datetime, message: str, entry_id: str | None = None, stream: str | None = "stdout") -> LogEntryIn:
    raw: dict[str, Any] = {"timestamp": int(at.timestamp() * 1000), "message": message, "source": "lambda"}
    if entry_id is not None:
        raw["id"] = entry_id
    return LogEntryIn(logged_at=at, message=message, stream=stream, raw=raw)


def seqs(lines: list[Any]) -> list[int]:
    return [line.context["seq"] for line in lines]


def test_rows_come_back_oldest_first_within_since_limit_and_before(store: Store) -> None:
    store.add_log_lines(VERCEL_DRAIN, [entry(T0 + timedelta(seconds=i), f"m{i}") for i in range(10)], T0)
    store.add_log_lines("other", [entry(T0, "elsewhere")], T0)
    rows = store.log_lines(VERCEL_DRAIN, T0 + timedelta(seconds=3), limit=4)
    assert [r.message for r in rows] == ["m6", "m7", "m8", "m9"]
    older = store.log_lines(VERCEL_DRAIN, None, limit=100, before=(rows[0].logged_at, rows[0].id))
    assert [r.message for r in older] == [f"m{i}" for i in range(6)]
    assert rows[0].raw["source"] == "lambda" and rows[0].stream == "stdout" and rows[0].logged_at.tzinfo is not None


def test_pruning_deletes_only_rows_logged_before_the_cutoff(store: Store) -> None:
    store.add_log_lines(VERCEL_DRAIN, [entry(T0 - timedelta(hours=7), "old"), entry(T0, "new")], T0)
    assert store.prune_log_lines(T0 - timedelta(hours=6)) == 1
    assert [r.message for r in store.log_lines(VERCEL_DRAIN)] == ["new"]
    assert store.prune_log_lines(T0 - timedelta(hours=6)) == 0
    assert store.newest_received_at(VERCEL_DRAIN) == T0


async def test_captured_output_through_the_store_reads_as_the_app_lines_and_the_parsers_find_them(
        store: Store) -> None:
    """Every captured line (banner and dotenv tip included) stored as a drain entry: only the app's JSON lines come
    back, in time order; malware is told apart from extension refusals and the audit failures are database ones."""
    entries = [entry(RUN + timedelta(minutes=27), text, f"{name}-{i}", name.rsplit(".", 1)[1])
               for name in CAPTURED for i, text in enumerate(captured(name).decode().splitlines()) if text.strip()]
    store.add_log_lines(VERCEL_DRAIN, entries, T0)
    lines = await DrainLogs(store).lines(since=RUN, limit=1000)
    expected = sorted((e for name in CAPTURED for e in captured_json(name)), key=lambda e: e["timestamp"])
    assert [line.message for line in lines] == [e["message"] for e in expected]
    uploads = parse_upload_logs(lines)
    assert (uploads.malware, uploads.policy, uploads.refused_extensions) == (1, 4, {".exe": 2, ".txt": 1})
    assert parse_db_logs(lines).failures == 9


async def test_a_redelivered_entry_counts_once_and_a_multi_line_message_yields_each_line(store: Store) -> None:
    (malware_line, audit_line), exe_line = [x for _, x in burst(T0, malware=1)], burst(T0, exe=1)[0][1]
    store.add_log_lines(VERCEL_DRAIN, [entry(T0, malware_line, "e1"), entry(T0, audit_line, "e2")], T0)
    store.add_log_lines(VERCEL_DRAIN, [entry(T0, malware_line, "e1")], T0)  # Vercel retried the delivery
    store.add_log_lines(VERCEL_DRAIN, [entry(T0, f"START RequestId: x\n{exe_line}\nEND RequestId: x", "e3")], T0)
    reading = parse_upload_logs(await DrainLogs(store).lines(since=T0 - timedelta(seconds=1)))
    assert (reading.malware, reading.policy, reading.audit_failures) == (1, 1, 1)


async def test_since_uses_the_app_timestamp_and_limit_keeps_the_newest_across_pages(store: Store) -> None:
    """2,500 rows (more than one page): the newest 2,200 come back in order; ``since`` cuts by the line's own time
    even when the drain stamped it a little later."""
    lines = numbered(T0, 2500)
    store.add_log_lines(VERCEL_DRAIN, [entry(T0 + timedelta(milliseconds=i + 30), text, f"n{i}")
                                        for i, text in enumerate(lines)], T0)
    drain = DrainLogs(store)
    assert seqs(await drain.lines(since=T0, limit=2200)) == list(range(300, 2500))
    assert seqs(await drain.lines(since=T0 + timedelta(milliseconds=2490), limit=2200)) == list(range(2490, 2500))


async def test_without_since_the_default_window_is_read(store: Store) -> None:
    old = T0 - timedelta(hours=2)
    store.add_log_lines(VERCEL_DRAIN, [entry(old, app_line(old, "info", "old")),
                                        entry(T0, app_line(T0, "info", "recent"))], T0)
    drain = DrainLogs(store, clock=VirtualClock(T0 + timedelta(minutes=5)), default_window_s=3600)
    assert [line.message for line in await drain.lines()] == ["recent"]


async def test_a_drain_that_never_delivered_is_an_error_but_a_quiet_window_is_empty(store: Store) -> None:
    """No row at all: the drain is not working, and the runbooks must say the logs are unavailable. Rows but none
    in the window: the app was quiet, an honest empty answer."""
    drain = build_drain_logs(Settings(log_drain_retention_s=3600), store)
    with pytest.raises(PlatformError, match="/logs/vercel"):
        await drain.lines(since=T0)
    store.add_log_lines(VERCEL_DRAIN, [entry(T0, app_line(T0, "info", "Upload: validated"))], T0)
    assert await drain.lines(since=T0 + timedelta(minutes=5)) == []
    assert [line.message for line in await drain.lines(since=T0)] == ["Upload: validated"]
