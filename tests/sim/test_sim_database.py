"""The simulated database and job pools: ``/_sim/database`` and ``/_sim/jobs`` contracts, and what the database
scenarios do to the app's responses, logs, metrics and error tracker (memory backend; the real-PostgreSQL backend
is exercised by tests/flows/test_database_errors_pg.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from kamkmserve_sim import SimServer

from tests.helpers import local_http
from tests.sim.simkit import fetch, poll

Start = Callable[..., SimServer]


@pytest.fixture
def quiet(start_sim: Start) -> Iterator[tuple[SimServer, httpx.Client]]:
    server = start_sim(rps=0)
    with httpx.Client(base_url=server.url + "/_sim", timeout=30) as client:
        yield server, client


def log_entries(plane: httpx.Client) -> list[dict[str, Any]]:
    return [json.loads(line) for line in plane.get("/logs", params={"limit": 5000}).text.splitlines()
            if line.startswith("{")]


def test_jobs_list_the_platform_worker_pools(quiet: tuple[SimServer, httpx.Client]) -> None:
    _, plane = quiet
    jobs = plane.get("/jobs").json()["jobs"]
    assert [(j["name"], j["workers"], j["heavy"]) for j in jobs] == [("report-export", 2, True),
                                                                     ("email-digest", 1, False)]


def test_setting_workers_returns_the_previous_count_and_is_idempotent(quiet: tuple[SimServer, httpx.Client]) -> None:
    _, plane = quiet
    first = plane.post("/jobs/report-export", json={"workers": 0}).json()
    assert first == {"name": "report-export", "workers": 0, "previous": 2, "changed": True}
    again = plane.post("/jobs/report-export", json={"workers": 0}).json()
    assert again == {"name": "report-export", "workers": 0, "previous": 0, "changed": False}
    assert plane.post("/jobs/report-export", json={"workers": 2}).json()["previous"] == 0


@pytest.mark.parametrize(("body", "message"), [
    ({"workers": -1}, "between 0 and 50"), ({"workers": "2"}, "integer"), ({"workers": True}, "integer"),
    ({}, "integer"), ([], "JSON object"), ("nope", "not JSON"),
])  # fmt: skip
def test_bad_worker_bodies_are_422_with_the_reason(quiet: tuple[SimServer, httpx.Client], body: Any,
                                                   message: str) -> None:
    _, plane = quiet
    raw = body if isinstance(body, str) else json.dumps(body)
    answer = plane.post("/jobs/report-export", content=raw)
    assert answer.status_code == 422 and message in answer.json()["error"]
    assert plane.get("/jobs").json()["jobs"][0]["workers"] == 2


def test_an_unknown_job_is_404(quiet: tuple[SimServer, httpx.Client]) -> None:
    _, plane = quiet
    answer = plane.post("/jobs/nightly-backup", json={"workers": 0})
    assert answer.status_code == 404 and "nightly-backup" in answer.json()["error"]


def test_quiet_reports_show_no_waits_no_sessions_a_cheap_small_table_and_one_unused_index(
    quiet: tuple[SimServer, httpx.Client]
) -> None:
    _, plane = quiet
    locks = plane.get("/database/locks").json()
    sessions = plane.get("/database/sessions", params={"min_seconds": 5}).json()
    scans = plane.get("/database/scans", params={"min_seq_scans": 1}).json()
    unused = plane.get("/database/indexes/unused").json()
    statements = plane.get("/database/statements").json()
    assert list(locks) == ["available", "reason", "at", "waits"] and locks["available"] and locks["waits"] == []
    assert sessions["available"] and sessions["min_seconds"] == 5 and sessions["sessions"] == []
    assert scans["available"] and not any(t["flagged"] for t in scans["tables"])  # the small table's scans are cheap
    assert any(t["table"] == "kamkmserve_service" and "small table" in t["reason"] for t in scans["tables"])
    assert [i["index"] for i in unused["indexes"]] == ["cart_item_created_at_idx"]
    assert datetime.fromisoformat(unused["stats_since"]) <= datetime.fromisoformat(unused["at"])
    assert statements == {"available": False, "reason": "pg_stat_statements is not installed in this database",
                          "at": statements["at"], "statements": []}


@pytest.mark.parametrize(("path", "params", "message"), [
    ("/database/sessions", {"min_seconds": "soon"}, "min_seconds must be a number"),
    ("/database/sessions", {"min_seconds": "-1"}, "between 0"),
    ("/database/scans", {"min_seq_scans": "1.5"}, "integer"),
    ("/database/statements", {"limit": "0"}, "between 1 and 100"),
])  # fmt: skip
def test_bad_report_parameters_are_422(quiet: tuple[SimServer, httpx.Client], path: str, params: dict[str, str],
                                       message: str) -> None:
    _, plane = quiet
    answer = plane.get(path, params=params)
    assert answer.status_code == 422 and message in answer.json()["error"]


def test_terminate_refuses_the_inspector_says_false_for_unknown_pids_and_422s_bad_ones(
    quiet: tuple[SimServer, httpx.Client]
) -> None:
    _, plane = quiet
    own = plane.get("/database").json()["inspector_pid"]
    refused = plane.post("/database/terminate", json={"pid": own})
    assert refused.status_code == 409 and "inspector itself" in refused.json()["error"]
    assert plane.post("/database/terminate", json={"pid": 4}).json() == {"pid": 4, "terminated": False}
    for bad in ({"pid": 0}, {"pid": "12"}, {"pid": True}, {}):
        answer = plane.post("/database/terminate", json=bad)
        assert answer.status_code == 422 and "positive integer" in answer.json()["error"]


def test_create_index_is_idempotent_and_checks_tables_columns_and_identifiers(
    quiet: tuple[SimServer, httpx.Client]
) -> None:
    _, plane = quiet
    body = {"table": "kamkmserve_order", "columns": ["user_id"], "name": "ix_kamkmserve_order_user_id"}
    first = plane.post("/database/indexes", json=body).json()
    assert first["created"] is True and first["name"] == "ix_kamkmserve_order_user_id"
    assert first["statement"].startswith("CREATE INDEX CONCURRENTLY IF NOT EXISTS")
    assert plane.post("/database/indexes", json=body).json()["created"] is False
    assert plane.get("/database").json()["slow_column_indexed"] is True
    missing = plane.post("/database/indexes",
                         json={"table": "kamkmserve_order", "columns": ["colour"], "name": "ix_colour"})
    assert missing.status_code == 422 and 'column "colour" does not exist' in missing.json()["error"]
    nowhere = plane.post("/database/indexes",
                         json={"table": "kamkmserve_invoice", "columns": ["id"], "name": "ix_invoice_id"})
    assert nowhere.status_code == 422 and "does not exist" in nowhere.json()["error"]
    evil = plane.post("/database/indexes", json={"table": 'order"; DROP TABLE x; --', "columns": ["id"],
                                                   "name": "ix_order_id"})
    assert evil.status_code == 422 and "plain identifier" in evil.json()["error"]
    assert plane.post("/database/indexes", json={"table": "kamkmserve_order", "columns": "user_id"}).status_code == 422
    unnamed = plane.post("/database/indexes", json={"table": "kamkmserve_order", "columns": ["user_id"]})
    assert unnamed.status_code == 422, "the client names the index, as DDL does"


def test_lock_contention_fails_staff_order_updates_the_way_the_app_reports_it(start_sim: Start) -> None:
    server = start_sim(scenario="lock-contention", rps=100, onset_s=0.1)
    plane = httpx.Client(base_url=server.url + "/_sim", timeout=30)
    poll(lambda: plane.get("/database/locks").json()["waits"], what="a waiting writer")
    state = plane.get("/database").json()
    blocker = state["blocker"]
    assert blocker["application"] == "kamkmserve-jobs:report-export" and blocker["state"] == "idle in transaction"
    wait = plane.get("/database/locks").json()["waits"][0]
    assert wait["blocking_pids"] == [blocker["pid"]] and wait["blocked_query"].startswith('update "kamkmserve_order"')
    sessions = plane.get("/database/sessions", params={"min_seconds": 0}).json()["sessions"]
    assert sessions[0]["pid"] == blocker["pid"]

    entries = log_entries(plane)
    wrapper = next(e for e in entries if e["message"] == "DB UPDATE on kamkmserve_order failed")
    assert list(wrapper) == ["timestamp", "level", "message", "context"] and wrapper["level"] == "error"
    assert list(wrapper["context"]) == ["duration"] and wrapper["context"]["duration"] >= 2000
    failed = next(e for e in entries if e["message"] == "Database operation failed: UPDATE on kamkmserve_order")
    assert failed["context"]["error"] == "canceling statement due to lock timeout" and failed["context"]["dbError"]
    assert any(e["message"].startswith("Slow request detected: PATCH /api/admin/orders/") for e in entries)
    stderr = plane.get("/logs", params={"stream": "stderr", "limit": 5000}).text
    assert "NeonDbError: canceling statement due to lock timeout" in stderr  # the handler's console.error(e)
    page = fetch(server.url, "/api/monitoring/metrics", headers={"x-forwarded-for": "10.9.9.8"}).body
    assert 'db_operation_duration{operation="UPDATE",table="kamkmserve_order",success="false"}' in page
    issues = plane.get("/errors").json()
    assert any(i["title"] == "NeonDbError: canceling statement due to lock timeout" for i in issues)

    # Pausing the jobs does not release the lock: the stuck session is idle, not working.
    plane.post("/jobs/report-export", json={"workers": 0})
    assert plane.get("/database").json()["blocker"]["pid"] == blocker["pid"]
    assert plane.post("/database/terminate", json={"pid": blocker["pid"]}).json()["terminated"] is True
    assert plane.get("/database").json()["blocker"] is None
    assert plane.get("/database/locks").json()["waits"] == []


def test_a_locked_order_update_answers_the_handlers_500_body(start_sim: Start) -> None:
    server = start_sim(scenario="lock-contention", rps=0, onset_s=0.0)
    poll(lambda: local_http.get(f"{server.url}/_sim/database", timeout=10).json()["blocker"], what="the blocker")
    order = "/api/admin/orders/5b0e0c2a-0000-4000-8000-000000000001"
    # PATCH orders/[id] needs ADMIN (docs/reference/kamkmserve.md §6.2): signed out, it never reaches the database.
    signed_out = fetch(server.url, order, method="PATCH", headers={"content-type": "application/json"},
                       body=b'{"status":"PAID"}')
    assert signed_out.status == 401 and signed_out.body == '{"error":"Unauthorized"}'
    # An admin's session (the sim's stand-in for a Clerk admin) reaches the handler the staff traffic does.
    answer = fetch(server.url, order, method="PATCH", body=b'{"status":"PAID"}',
                   headers={"content-type": "application/json", "cookie": "__session=sim_session_user_probe_admin"})
    assert answer.status == 500 and answer.body == '{"error":"Failed to update order"}'


def test_as_is_mode_fails_the_same_requests_but_logs_no_database_line(start_sim: Start) -> None:
    server = start_sim(scenario="lock-contention", rps=100, onset_s=0.1, request_metrics=False)
    plane = httpx.Client(base_url=server.url + "/_sim", timeout=30)
    poll(lambda: plane.get("/database/locks").json()["waits"], what="a waiting writer")
    poll(lambda: any(i["title"].startswith("NeonDbError") for i in plane.get("/errors").json()), what="a failure")
    messages = {e["message"] for e in log_entries(plane)}
    assert not {m for m in messages if "atabase" in m or m.startswith(("DB ", "Slow request"))}
    page = fetch(server.url, "/api/monitoring/metrics", headers={"x-forwarded-for": "10.9.9.7"}).body
    assert "db_operation" not in page


def test_slow_query_slows_checkout_until_the_index_exists(start_sim: Start) -> None:
    server = start_sim(scenario="slow-query", rps=150, onset_s=0.1)
    plane = httpx.Client(base_url=server.url + "/_sim", timeout=30)

    def flagged() -> bool:
        tables = plane.get("/database/scans", params={"min_seq_scans": 10}).json()["tables"]
        return any(t["table"] == "kamkmserve_order" and t["flagged"] for t in tables)

    poll(flagged, timeout_s=15, what="kamkmserve_order flagged for sequential scans")
    assert plane.get("/releases").json()["releases"][0]["version"] == "v1.6.0"
    messages = [e["message"] for e in log_entries(plane)]
    assert "Slow database operation: SELECT on kamkmserve_order" in messages
    assert "Slow request detected: POST /api/checkout" in messages
    top = plane.get("/database/statements").json()
    assert top["available"] and '"kamkmserve_order"."user_id" = $1' in top["statements"][0]["query"]
    poll(lambda: any(i["title"] == "Slow DB Query" for i in plane.get("/errors").json()), what="Sentry's slow span")

    plane.post("/database/indexes",
               json={"table": "kamkmserve_order", "columns": ["user_id"], "name": "ix_kamkmserve_order_user_id"})
    since = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

    def checkouts_after() -> list[str] | None:
        lines = plane.get("/logs", params={"since": since}).text.splitlines()
        messages = [json.loads(line)["message"] for line in lines if line.startswith("{")]
        return messages if messages.count("Database operation: SELECT on kamkmserve_order") >= 20 else None

    after = poll(checkouts_after, timeout_s=15, what="checkouts after the index")
    assert "Slow database operation: SELECT on kamkmserve_order" not in after
    assert "Slow request detected: POST /api/checkout" not in after


def test_a_scenario_reset_clears_the_blocker_and_the_jobs(start_sim: Start) -> None:
    server = start_sim(scenario="lock-contention", rps=0, onset_s=0.0)
    plane = httpx.Client(base_url=server.url + "/_sim", timeout=30)
    poll(lambda: plane.get("/database").json()["blocker"], what="the blocker")
    plane.post("/jobs/report-export", json={"workers": 0})
    plane.post("/scenario", json={"name": "healthy"})
    state = plane.get("/database").json()
    assert state["fault"] is None and state["blocker"] is None and state["backend"] == "memory"
    assert plane.get("/jobs").json()["jobs"][0]["workers"] == 2
