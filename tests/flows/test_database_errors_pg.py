"""The database runbook on a real PostgreSQL: the simulator runs real statements in a throwaway database and the
runbook's PostgresInspector reads and repairs that database (tests.helpers.services: skipped without
PostgreSQL, a failure when REMEDIATE_REQUIRE_SERVICES=1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kamkmserve_sim import SimServer
from sqlalchemy import create_engine, text

from flows.database_errors import database_errors
from remediation import runtime
from remediation.providers.approvals import Scripted, ScriptedApprovals
from remediation.providers.database import PostgresInspector
from tests.flows.dbkit import DB_FAST, database, plane, wait_for_blocker, wait_for_seq_scans, wait_until, workers
from tests.helpers.services import postgres_url_fixture

pytestmark = [pytest.mark.usefixtures("prefect_api"), pytest.mark.postgres]

Sim = Callable[..., SimServer]
Build = Callable[..., runtime.Providers]


#: A throwaway database per test: the simulator builds kamkmserve's tables in it.
app_db = postgres_url_fixture("app_db", "remediate_dbflow", scope="function")


def scalar(url: str, sql: str, **params: Any) -> Any:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()
    finally:
        engine.dispose()


async def run(providers: runtime.Providers, **params: Any) -> dict[str, Any]:
    with runtime.use(providers):
        return await database_errors(**{**DB_FAST, **params})


async def test_real_lock_contention_names_the_real_blocker_and_terminating_it_frees_the_waiters(
    sim: Sim, providers: Build, app_db: str
) -> None:
    server = sim("lock-contention", database_url=app_db, rps=100)
    blocker = wait_for_blocker(server)
    assert scalar(app_db, "SELECT state FROM pg_stat_activity WHERE pid = :pid", pid=blocker) == "idle in transaction"
    approvals = ScriptedApprovals([Scripted(approve=True, approver="alice")])
    p = providers(server.url, app_database_url=app_db, approvals=approvals)
    assert isinstance(p.database, PostgresInspector)
    report = await run(p)

    assert report["outcome"] == "recovered", report["escalation"]
    assert [a["kind"] for a in report["actions"]] == ["pause_jobs", "terminate_backend", "resume_jobs"]
    terminate = report["actions"][1]
    assert terminate["target"] == f"backend {blocker} (kamkmserve-jobs:report-export)"
    assert f"SELECT pg_terminate_backend({blocker})" in approvals.requests[0].description
    locks = next(e for e in report["evidence"] if e["source"] == "locks")
    assert f"head blocker pid {blocker}" in locks["summary"]
    assert any(item["blocked_query"].startswith('update "kamkmserve_order" set "status"') and
               item["blocking_pids"] == [blocker] for item in locks["items"])
    assert scalar(app_db, "SELECT count(*) FROM pg_stat_activity WHERE pid = :pid", pid=blocker) == 0
    state = database(server)
    assert state["writes_blocked"] is False and state["writes_ok"] > 0  # the waiting UPDATEs really went through
    assert workers(server) == {"report-export": 2, "email-digest": 1}
    server.stop()  # the simulator's sessions (app writers, the job) end with it
    wait_until("the simulator's sessions to close", lambda: scalar(
        app_db, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name LIKE 'kamkmserve%'") == 0, timeout_s=10)


async def test_real_seq_scans_flag_the_table_and_create_index_concurrently_really_builds_the_index(
    sim: Sim, providers: Build, app_db: str
) -> None:
    server = sim("slow-query", database_url=app_db)
    wait_for_seq_scans(server, min_seq_scans=10)
    wait_until("Sentry's slow DB query issue",
               lambda: any(issue["title"] == "Slow DB Query" for issue in plane(server, "/errors")))
    approvals = ScriptedApprovals([Scripted(approve=True, approver="bob")])
    report = await run(providers(server.url, app_database_url=app_db, approvals=approvals))

    assert report["outcome"] == "recovered", report["escalation"]
    assert [a["kind"] for a in report["actions"]] == ["pause_jobs", "create_index", "resume_jobs"]
    assert report["actions"][1]["target"] == "public.kamkmserve_order(user_id)"
    assert "CREATE INDEX CONCURRENTLY" in approvals.requests[0].description
    scans = next(e for e in report["evidence"] if e["source"] == "scans")
    flagged = next(t for t in scans["items"] if t["table"] == "kamkmserve_order")
    assert flagged["flagged"] is True and flagged["seq_scan"] >= 10 and flagged["n_live_tup"] >= 1000
    statements = next(e for e in report["evidence"] if e["source"] == "statements")
    assert statements["available"] is False and "pg_stat_statements" in statements["summary"]
    assert scalar(app_db, "SELECT indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                          "WHERE c.relname = 'ix_kamkmserve_order_user_id'") is True
    assert database(server)["slow_column_indexed"] is True
