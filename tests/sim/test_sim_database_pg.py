"""The simulated database console on a real PostgreSQL (``SimConfig.database_url``): ``/_sim/database/...`` reads
the real catalogs with the simulator's own SQL and its repairs really happen. Checked against the database itself
(plain SQL here), never against the remediation's inspector. Skipped without PostgreSQL (tests.helpers.services).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from kamkmserve_sim import SimServer
from sqlalchemy import create_engine, text

from tests.helpers.services import postgres_url_fixture
from tests.sim.simkit import poll

pytestmark = pytest.mark.postgres
Start = Callable[..., SimServer]

#: A throwaway database per test: the simulator builds kamkmserve's tables in it.
app_db = postgres_url_fixture("app_db", "remediate_simconsole", scope="function")


def scalar(url: str, sql: str, **params: Any) -> Any:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql), params).scalar()
    finally:
        engine.dispose()


def plane(server: SimServer) -> httpx.Client:
    return httpx.Client(base_url=f"{server.url}/_sim", timeout=30)


def test_the_real_blocker_is_reported_waiting_writers_point_at_it_and_terminating_it_frees_them(
        start_sim: Start, app_db: str) -> None:
    server = start_sim(scenario="lock-contention", database_url=app_db, rps=50)
    with plane(server) as sim:
        locks = poll(lambda: (body := sim.get("/database/locks").json())["waits"] and body, timeout_s=30,
                     what="a writer waiting on the stuck job's row locks")
        blocker = sim.get("/database").json()["blocker"]["pid"]
        assert locks["available"] and all(w["blocking_pids"] == [blocker] for w in locks["waits"])
        assert locks["waits"][0]["blockers"][0]["state"] == "idle in transaction"
        assert scalar(app_db, "SELECT application_name FROM pg_stat_activity WHERE pid = :pid", pid=blocker) \
            == "kamkmserve-jobs:report-export"
        sessions = sim.get("/database/sessions", params={"min_seconds": 0}).json()["sessions"]
        assert any(s["pid"] == blocker and s["state"] == "idle in transaction" for s in sessions)
        assert sim.get("/database/backend", params={"pid": blocker}).json()["present"] is True
        assert sim.post("/database/terminate", json={"pid": blocker}).json() == {"pid": blocker, "terminated": True}
        poll(lambda: scalar(app_db, "SELECT count(*) FROM pg_stat_activity WHERE pid = :pid", pid=blocker) == 0,
             timeout_s=10, what="the blocker's backend to be gone")
        assert sim.get("/database/backend", params={"pid": blocker}).json()["present"] is False
        poll(lambda: not sim.get("/database/locks").json()["waits"], timeout_s=10, what="the waiters to be freed")


def test_real_sequential_scans_are_flagged_and_the_index_request_really_builds_a_valid_index(
        start_sim: Start, app_db: str) -> None:
    server = start_sim(scenario="slow-query", database_url=app_db, rps=20, onset_s=0.1)
    with plane(server) as sim:
        def flagged() -> bool:
            tables = sim.get("/database/scans", params={"min_seq_scans": 5}).json()["tables"]
            return any(t["table"] == "kamkmserve_order" and t["flagged"] for t in tables)

        poll(flagged, timeout_s=30, what="kamkmserve_order flagged for sequential scans")
        built = sim.post("/database/indexes", json={"table": "kamkmserve_order", "columns": ["user_id"],
                                                    "name": "ix_orders_user"}).json()
        assert built == {"name": "ix_orders_user", "created": True, "statement":
                         'CREATE INDEX CONCURRENTLY IF NOT EXISTS "ix_orders_user" ON "public"."kamkmserve_order" '
                         '("user_id")'}
        assert scalar(app_db, "SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_orders_user'::regclass")
        present = sim.get("/database/index", params={"name": "ix_orders_user"}).json()
        assert present["present"] is True and present["valid"] is True
        missing = sim.post("/database/indexes",
                           json={"table": "kamkmserve_order", "columns": ["colour"], "name": "ix_colour"})
        assert missing.status_code == 409 and 'column "colour" does not exist' in missing.json()["error"]
        poll(lambda: sim.get("/database").json()["slow_column_indexed"], timeout_s=10,
             what="the slow query to find its index")
