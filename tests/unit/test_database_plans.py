"""Pure decisions of the database runbook: which column to index, which backend to end, what the logs say."""

from __future__ import annotations

import pytest

from remediation.models import Finding, FindingStatus
from remediation.providers.dbqueries import (
    LockHolder,
    LockReport,
    LockWait,
    ScanReport,
    SessionInfo,
    SessionReport,
    TableScanStats,
)
from remediation.providers.logparse import parse_line
from remediation.providers.platform import Job, LogLine
from remediation.runbooks.database_errors import filter_columns, index_plan, pause_jobs_plan, terminate_plan
from tasks.database_errors.identify import parse_db_logs, verdict

ORDER = "kamkmserve_order"


@pytest.mark.parametrize(("sql", "columns"), [
    ('select "id" from "kamkmserve_order" where "kamkmserve_order"."user_id" = $1 order by "created_at" desc',
     ["user_id"]),
    ("SELECT * FROM public.kamkmserve_order WHERE status = 'PAID' AND created_at < now() LIMIT 5",
     ["status", "created_at"]),
    ('update "kamkmserve_order" set "status" = $1 where "kamkmserve_order"."id" = $2 returning "id"', ["id"]),
    ('select * from "kamkmserve_order" o join "kamkmserve_user" u on u.id = o.user_id where "u"."email" = $1', []),
    ('select * from "kamkmserve_user" where "kamkmserve_user"."email" = $1', []),  # another table
    ("select count(*) from kamkmserve_order", []),  # no filter
    ("select o.id from kamkmserve_order as o where o.coupon_id = $1", ["coupon_id"]),  # an alias
    ("Slow DB Query", []),
])  # fmt: skip
def test_filter_columns_reads_orm_and_handwritten_sql(sql: str, columns: list[str]) -> None:
    assert filter_columns(sql, ORDER) == columns


def scans(flagged: bool = True) -> ScanReport:
    return ScanReport(available=True, tables=(TableScanStats(
        schema_name="public", table=ORDER, seq_scan=90, seq_tup_read=9_000_000, idx_scan=3, n_live_tup=100_000,
        flagged=flagged, reason="heavy sequential scanning"),))


def test_index_plan_takes_the_first_filtered_column_of_a_flagged_table_never_the_primary_key() -> None:
    queries = ['update "kamkmserve_order" set "status" = $1 where "kamkmserve_order"."id" = $2',
               'select "id" from "kamkmserve_order" where "kamkmserve_order"."user_id" = $1']
    plan = index_plan("kamkmserve", scans(), queries)
    assert plan is not None and plan.columns == ("user_id",) and plan.table == ORDER
    assert plan.statement.startswith('CREATE INDEX CONCURRENTLY IF NOT EXISTS "ix_kamkmserve_order_user_id"')
    assert index_plan("kamkmserve", scans(flagged=False), queries) is None
    assert index_plan("kamkmserve", scans(), ["select 1"]) is None


def holder(pid: int, state: str, xact: float) -> LockHolder:
    return LockHolder(pid=pid, state=state, query="update ...", application=f"app-{pid}", xact_seconds=xact)


def wait(blocked: int, *blockers: LockHolder) -> LockWait:
    return LockWait(blocked_pid=blocked, blocked_query="update x", blocking_pids=tuple(b.pid for b in blockers),
                    blockers=blockers)


def test_terminate_plan_picks_the_idle_root_blocker_past_the_threshold() -> None:
    root = holder(100, "idle in transaction", 45.0)
    queued = holder(200, "active", 50.0)  # waits itself: not a root
    report = LockReport(available=True, waits=(wait(200, root), wait(300, queued, root), wait(400, root)))
    plan = terminate_plan("kamkmserve", report, SessionReport(available=True), held_s=30.0)
    assert plan is not None and plan.pid == 100 and plan.blocked_sessions == 3 and plan.held_for_s == 45.0
    assert plan.statement == "SELECT pg_terminate_backend(100)"
    assert terminate_plan("kamkmserve", report, SessionReport(available=True), held_s=60.0) is None


def test_terminate_plan_needs_waiters_and_falls_back_to_the_session_age() -> None:
    idle = SessionReport(available=True, sessions=(SessionInfo(pid=7, state="idle in transaction",
                                                               duration_seconds=90, xact_seconds=90),))
    assert terminate_plan("kamkmserve", LockReport(available=True), idle, held_s=30) is None
    assert terminate_plan("kamkmserve", LockReport(available=False, reason="down"), idle, held_s=30) is None
    unknown_age = LockReport(available=True, waits=(wait(8, LockHolder(pid=7)),))
    plan = terminate_plan("kamkmserve", unknown_age, idle, held_s=30)
    assert plan is not None and plan.pid == 7 and plan.held_for_s == 90


def test_pause_jobs_plan_pauses_running_heavy_pools_only() -> None:
    jobs = [Job(name="report-export", workers=2, heavy=True), Job(name="email-digest", workers=1),
            Job(name="reindex", workers=0, heavy=True)]
    plan = pause_jobs_plan("kamkmserve", jobs)
    assert plan is not None and plan.previous == {"report-export": 2}
    assert plan.undo().workers == {"report-export": 2}  # type: ignore[union-attr]
    assert pause_jobs_plan("kamkmserve", jobs[1:]) is None


def line(message: str, level: str = "error", **context: object) -> LogLine:
    import json

    parsed = parse_line(json.dumps({"timestamp": "2025-08-25T12:00:00.000Z", "level": level, "message": message,
                                    "context": context}))
    assert parsed is not None
    return parsed


def test_db_log_parsing_counts_a_failure_once_and_keeps_the_error() -> None:
    stats = parse_db_logs([
        line("Database operation: INSERT on kamkmserve_order", "info", duration=12),
        line("DB UPDATE on kamkmserve_order failed", duration=2010),
        line("Slow database operation: UPDATE on kamkmserve_order", "warn", duration=2010),
        line("Database operation failed: UPDATE on kamkmserve_order", error="canceling statement due to lock timeout"),
        line("Slow request detected: PATCH /api/admin/orders/1", "warn"),
        line("Upload: validated", "info"),
    ])
    update = next(g for g in stats.groups if g.operation == "UPDATE")
    assert (update.failed, update.slow, update.last_error) == (1, 1, "canceling statement due to lock timeout")
    assert stats.failures == 1 and stats.slow == 1 and stats.operations == 2


def finding(check: str, status: FindingStatus) -> Finding:
    return Finding(check=check, status=status, detail=check)


@pytest.mark.parametrize(("statuses", "expected"), [
    (("unknown", "unknown", "unknown"), "unknown"),
    (("unknown", "unknown", "breach"), "breach"),
    (("ok", "unknown", "ok"), "ok"),
    (("ok", "breach", "ok"), "breach"),
])  # fmt: skip
def test_verdict_breaches_on_any_signal_and_is_unknown_only_when_all_are(statuses: tuple[str, ...],
                                                                         expected: str) -> None:
    checks = ("db_operation_failures", "db_operation_p95", "db_log_errors")
    result = verdict([finding(c, FindingStatus(s)) for c, s in zip(checks, statuses, strict=True)]
                     + [finding("error_rate_5xx", FindingStatus.BREACH)])  # the 5xx share never decides
    assert result.status is FindingStatus(expected)
