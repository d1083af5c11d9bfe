"""db_operation_duration samples grouped by table and operation; a page without them is unknown, not healthy."""

from __future__ import annotations

import pytest

from remediation.providers.dbops import parse_db_operations

HEADER = (
    "# HELP process_uptime_seconds Process uptime in seconds\n# TYPE process_uptime_seconds gauge\n"
    "process_uptime_seconds 12.5\n"
)
TRAILER = (
    "# HELP http_requests_total Total HTTP requests observed\n# TYPE http_requests_total counter\n"
)


def page(*lines: str) -> str:
    body = "".join(
        ["# HELP db_operation_duration Auto-exported metric\n# TYPE db_operation_duration gauge\n", *lines]
    ) if lines else ""
    return HEADER + body + TRAILER


def sample(table: str, op: str, ms: int, ok: bool = True) -> str:
    return f'db_operation_duration{{operation="{op}",table="{table}",success="{"true" if ok else "false"}"}} {ms}\n'


def test_groups_by_table_and_operation_and_counts_failures() -> None:
    stats = parse_db_operations(page(
        sample("kamkmserve_user", "SELECT", 10), sample("kamkmserve_user", "SELECT", 30),
        sample("kamkmserve_user", "UPDATE", 5000, ok=False), sample("kamkmserve_user", "UPDATE", 20),
    ))
    assert stats.available and stats.samples == 4 and stats.failures == 1
    by_key = {(o.table, o.operation): o for o in stats.operations}
    select = by_key[("kamkmserve_user", "SELECT")]
    assert (select.count, select.failures, select.avg_ms, select.p95_ms) == (2, 0, 20.0, 30.0)
    update = by_key[("kamkmserve_user", "UPDATE")]
    assert update.failures == 1 and update.failure_pct == 50.0 and update.max_ms == 5000.0
    assert [o.operation for o in stats.failing()] == ["UPDATE"]
    assert stats.slowest()[0].operation == "UPDATE"


def test_only_the_most_recent_window_counts() -> None:
    stats = parse_db_operations(page(sample("t", "SELECT", 9000, ok=False), sample("t", "SELECT", 5)), 1)
    assert stats.failures == 0 and stats.operations[0].max_ms == 5.0


def test_a_page_without_db_samples_is_unknown_and_says_why() -> None:
    stats = parse_db_operations(page())
    assert not stats.available and "db_operation_duration" in stats.reason


def test_a_page_that_is_not_kamkmserve_metrics_is_an_error() -> None:
    with pytest.raises(ValueError, match="not kamkmserve"):
        parse_db_operations("# TYPE foo gauge\nfoo 1\n")
