"""PostgresInspector against a real PostgreSQL: real locks, real idle transactions, real seq scans, real DDL.

One throwaway database for the module (``tests.helpers.services``): skipped without PostgreSQL, a failure
when REMEDIATE_REQUIRE_SERVICES=1. Statistics in PostgreSQL 15 are flushed asynchronously, so every
assertion about them polls with a bounded deadline.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine

from remediation.providers.database import (
    PG_STAT_STATEMENTS_MISSING,
    CreateIndex,
    DatabaseActionError,
    PostgresInspector,
)
from tests.helpers.services import postgres_url_fixture

pytestmark = pytest.mark.postgres

dbinspect_postgres_url = postgres_url_fixture(name="dbinspect_postgres_url", prefix="remediate_dbinspect")

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool], timeout: float = 15.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if ok(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.2)


@pytest.fixture
def engine(dbinspect_postgres_url: str) -> Iterator[Engine]:
    eng = create_engine(dbinspect_postgres_url, connect_args={"application_name": "dbinspect-test"})
    yield eng
    eng.dispose()


@pytest.fixture
async def inspector(dbinspect_postgres_url: str) -> AsyncIterator[PostgresInspector]:
    insp = PostgresInspector(dbinspect_postgres_url)
    yield insp
    await insp.aclose()


def setup_sql(engine: Engine, *statements: str) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))


class Waiter(threading.Thread):
    """Runs one statement on its own connection (it will block on a lock) and records the outcome."""

    def __init__(self, engine: Engine, sql: str) -> None:
        super().__init__(daemon=True)
        self.engine, self.sql = engine, sql
        self.conn: Connection = engine.connect()
        self.pid: int = self.conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        self.conn.execute(text("SET lock_timeout = '30s'"))  # a broken test must not hang forever
        self.conn.commit()
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.conn.execute(text(self.sql)).rowcount
            self.conn.commit()
        except BaseException as exc:
            self.error = exc
        finally:
            self.conn.close()


def hold(engine: Engine, sql: str) -> tuple[Connection, int]:
    conn = engine.connect()
    pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    conn.execute(text(sql))  # the transaction stays open: the session is now idle in transaction
    return conn, pid


def drop_connection(conn: Connection) -> None:
    try:
        conn.invalidate()
    finally:
        conn.close()


async def test_dbinspect_row_lock_blocker_is_reported_and_terminated(
    engine: Engine, inspector: PostgresInspector
) -> None:
    setup_sql(
        engine,
        "CREATE TABLE lock_accounts (id int PRIMARY KEY, balance int NOT NULL)",
        "INSERT INTO lock_accounts SELECT g, 100 FROM generate_series(1, 10) g",
    )
    blocker, blocker_pid = hold(engine, "UPDATE lock_accounts SET balance = balance + 1 WHERE id = 1")
    waiter = Waiter(engine, "UPDATE lock_accounts SET balance = balance - 1 WHERE id = 1")
    waiter.start()
    try:
        report = await eventually(
            inspector.blocking_locks, lambda r: any(w.blocked_pid == waiter.pid for w in r.waits)
        )
        assert report.available, report.reason
        wait = next(w for w in report.waits if w.blocked_pid == waiter.pid)
        assert wait.blocking_pids == (blocker_pid,)
        assert "balance - 1" in wait.blocked_query
        assert wait.lock_type == "transactionid"  # a row lock is waited for on the holder's transaction
        assert wait.waited_seconds is not None and wait.waited_seconds >= 0
        (holder,) = wait.blockers
        assert holder.pid == blocker_pid
        assert holder.state == "idle in transaction"
        assert "balance + 1" in holder.query
        assert report.blocker_pids() == [blocker_pid]

        sessions = await eventually(
            lambda: inspector.long_running(0.3), lambda r: {blocker_pid, waiter.pid} <= {s.pid for s in r.sessions}
        )
        assert sessions.available, sessions.reason
        by_pid = {s.pid: s for s in sessions.sessions}
        assert by_pid[blocker_pid].idle_in_transaction
        assert by_pid[blocker_pid].duration_seconds >= 0.3
        assert "balance + 1" in by_pid[blocker_pid].query
        assert by_pid[waiter.pid].state == "active" and by_pid[waiter.pid].wait_event_type == "Lock"
        assert all(s.application != "remediation-inspector" for s in sessions.sessions)

        assert waiter.is_alive()  # still stuck behind the blocker
        assert await inspector.terminate_backend(blocker_pid) is True
        await asyncio.to_thread(waiter.join, 10)
        assert not waiter.is_alive(), "the waiter was not freed by terminating its blocker"
        assert waiter.error is None, waiter.error
        assert waiter.result == 1
        after = await inspector.blocking_locks()
        assert after.available and all(w.blocked_pid != waiter.pid for w in after.waits)
        # the blocker's uncommitted +1 was rolled back; only the waiter's -1 landed
        with engine.connect() as conn:
            assert conn.execute(text("SELECT balance FROM lock_accounts WHERE id = 1")).scalar_one() == 99
        assert await inspector.terminate_backend(blocker_pid) is False  # already gone
    finally:
        drop_connection(blocker)
        waiter.join(10)


async def test_dbinspect_table_lock_names_the_relation(engine: Engine, inspector: PostgresInspector) -> None:
    setup_sql(engine, "CREATE TABLE lock_catalog (id int PRIMARY KEY)")
    blocker, blocker_pid = hold(engine, "LOCK TABLE lock_catalog IN ACCESS EXCLUSIVE MODE")
    waiter = Waiter(engine, "SELECT count(*) FROM lock_catalog")
    waiter.start()
    try:
        report = await eventually(
            inspector.blocking_locks, lambda r: any(w.blocked_pid == waiter.pid for w in r.waits)
        )
        wait = next(w for w in report.waits if w.blocked_pid == waiter.pid)
        assert wait.blocking_pids == (blocker_pid,)
        assert wait.lock_type == "relation"
        assert wait.relation == "lock_catalog"
        assert wait.lock_mode == "AccessShareLock"
        assert "LOCK TABLE lock_catalog" in wait.blockers[0].query
    finally:
        blocker.rollback()
        blocker.close()
        waiter.join(10)
    assert waiter.error is None


async def test_dbinspect_seq_scans_flagged_then_index_fixes_the_plan(
    engine: Engine, inspector: PostgresInspector
) -> None:
    setup_sql(
        engine,
        "CREATE TABLE scan_orders (id serial PRIMARY KEY, customer_id int NOT NULL, note text)",
        "INSERT INTO scan_orders (customer_id, note) SELECT g % 2000, md5(g::text) FROM generate_series(1, 40000) g",
    )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE scan_orders"))
    query = "SELECT count(*) FROM scan_orders WHERE customer_id = 42"
    load = create_engine(engine.url)
    with load.connect() as conn:
        for _ in range(25):
            assert conn.execute(text(query)).scalar_one() == 20
    load.dispose()  # a backend flushes its statistics when it exits

    def scan_orders_flagged(report: Any) -> bool:
        return any(t.table == "scan_orders" and t.flagged for t in report.tables)

    report = await eventually(lambda: inspector.scan_stats(20), scan_orders_flagged)
    assert report.available, report.reason
    stats = next(t for t in report.tables if t.table == "scan_orders")
    assert stats.flagged, stats.reason
    assert stats.schema_name == "public"
    assert stats.seq_scan >= 25 and stats.idx_scan == 0
    assert stats.seq_tup_read >= 25 * 40000
    assert stats.n_live_tup == 40000
    assert "sequential" in stats.reason
    assert stats in report.flagged()
    assert all(t.seq_scan >= 20 for t in report.tables)

    def plan() -> str:
        with engine.connect() as conn:
            return "\n".join(conn.execute(text(f"EXPLAIN {query}")).scalars())

    assert "Seq Scan on scan_orders" in plan()
    index = CreateIndex(table="scan_orders", columns=("customer_id",), name="ix_scan_orders_customer_id")
    await inspector.create_index_concurrently(index)
    after = plan()
    assert "Seq Scan" not in after, after
    assert "ix_scan_orders_customer_id" in after and ("Index" in after or "Bitmap" in after)
    await inspector.create_index_concurrently(index)  # IF NOT EXISTS: a re-run is harmless
    with engine.connect() as conn:
        valid = conn.execute(
            text("SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_scan_orders_customer_id'::regclass")
        ).scalar_one()
    assert valid is True


async def test_dbinspect_small_tables_are_not_flagged(engine: Engine, inspector: PostgresInspector) -> None:
    setup_sql(
        engine,
        "CREATE TABLE scan_tiny (id int, v int)",
        "INSERT INTO scan_tiny SELECT g, g FROM generate_series(1, 10) g",
    )
    load = create_engine(engine.url)
    with load.connect() as conn:
        for _ in range(12):
            conn.execute(text("SELECT * FROM scan_tiny WHERE v = 3")).all()
    load.dispose()
    report = await eventually(lambda: inspector.scan_stats(12), lambda r: any(t.table == "scan_tiny" for t in r.tables))
    tiny = next(t for t in report.tables if t.table == "scan_tiny")
    assert not tiny.flagged and "small table" in tiny.reason


async def test_dbinspect_create_index_failures_raise(engine: Engine, inspector: PostgresInspector) -> None:
    with pytest.raises(DatabaseActionError, match="no_such_table"):
        await inspector.create_index_concurrently(CreateIndex(table="no_such_table", columns=("x",)))
    setup_sql(engine, "CREATE TABLE idx_fail (id int)")
    with pytest.raises(DatabaseActionError, match="no_such_column"):
        await inspector.create_index_concurrently(CreateIndex(table="idx_fail", columns=("no_such_column",)))


async def test_dbinspect_mixed_case_identifiers_are_quoted_correctly(
    engine: Engine, inspector: PostgresInspector
) -> None:
    setup_sql(engine, 'CREATE SCHEMA "Billing"', 'CREATE TABLE "Billing"."Invoice$Lines" ("invoiceId" int, total int)')
    stmt = CreateIndex(table="Invoice$Lines", columns=("invoiceId", "total"), schema="Billing")
    await inspector.create_index_concurrently(stmt)
    with engine.connect() as conn:
        definition = conn.execute(
            text("SELECT indexdef FROM pg_indexes WHERE schemaname = 'Billing' AND indexname = :n"), {"n": stmt.name}
        ).scalar_one()
    assert '"Invoice$Lines"' in definition and '"invoiceId"' in definition


async def test_dbinspect_unused_indexes_lists_a_fresh_index(engine: Engine, inspector: PostgresInspector) -> None:
    setup_sql(
        engine,
        "CREATE TABLE idx_items (id int PRIMARY KEY, sku text UNIQUE, label text)",
        "INSERT INTO idx_items SELECT g, 'sku' || g, 'label' || g FROM generate_series(1, 100) g",
        "CREATE INDEX ix_idx_items_label ON idx_items (label)",
    )
    report = await inspector.unused_indexes()
    assert report.available, report.reason
    names = {i.index for i in report.indexes}
    assert "ix_idx_items_label" in names
    assert "idx_items_pkey" not in names and "idx_items_sku_key" not in names  # they enforce constraints
    item = next(i for i in report.indexes if i.index == "ix_idx_items_label")
    assert item.table == "idx_items" and item.idx_scan == 0 and item.size_bytes > 0
    assert item.definition.startswith("CREATE INDEX ix_idx_items_label ON public.idx_items")


async def test_dbinspect_top_statements_reports_missing_extension_honestly(
    engine: Engine, inspector: PostgresInspector
) -> None:
    with engine.connect() as conn:
        installed = conn.execute(text("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'")).first()
    report = await inspector.top_statements(5)
    if installed is None:
        assert report.available is False
        assert report.reason == PG_STAT_STATEMENTS_MISSING
        assert report.statements == ()
    else:  # installed in the template: either readable, or installed but not preloaded
        assert report.available or "shared_preload_libraries" in report.reason


async def test_dbinspect_inspector_sessions_are_tagged_and_time_limited(
    engine: Engine, inspector: PostgresInspector
) -> None:
    assert (await inspector.blocking_locks()).available  # opens a pooled inspector session
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT application_name FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = 'remediation-inspector'"
            )
        ).all()
    assert rows, "the inspector's session should identify itself as remediation-inspector"
    # a wedged read gives up after the lock/statement timeout instead of hanging the runbook: an open
    # transaction has dropped an index (AccessExclusiveLock on it), and unused_indexes must size that index.
    quick = PostgresInspector(engine.url.render_as_string(hide_password=False), statement_timeout_s=0.3)
    setup_sql(engine, "CREATE TABLE wedge (id int)", "CREATE INDEX ix_wedge_id ON wedge (id)")
    blocker, _ = hold(engine, "DROP INDEX ix_wedge_id")
    try:
        started = time.monotonic()
        report = await quick.unused_indexes()
        elapsed = time.monotonic() - started
        assert report.available is False
        assert "unused_indexes failed" in report.reason
        assert "timeout" in report.reason, report.reason
        assert elapsed < 5
    finally:
        blocker.rollback()
        blocker.close()
        await quick.aclose()


async def test_dbinspect_a_backend_reads_present_until_it_is_terminated_then_gone(
    engine: Engine, inspector: PostgresInspector
) -> None:
    """The read-back of pg_terminate_backend when its answer was lost (remediation.read_back)."""
    setup_sql(engine, "CREATE TABLE presence_rows (id int)")
    session, pid = hold(engine, "INSERT INTO presence_rows VALUES (1)")
    try:
        seen = await inspector.backend_present(pid)
        assert seen.available and seen.present and seen.detail == "idle in transaction"
        assert await inspector.terminate_backend(pid) is True
        gone = await eventually(lambda: inspector.backend_present(pid), lambda p: not p.present)
        assert gone.available and not gone.present
    finally:
        drop_connection(session)


async def test_dbinspect_an_index_reads_present_and_valid_after_it_is_built_and_absent_before(
    engine: Engine, inspector: PostgresInspector
) -> None:
    setup_sql(engine, "CREATE TABLE presence_items (id int, sku text)")
    statement = CreateIndex(table="presence_items", columns=("sku",))
    before = await inspector.index_present("public", statement.name)
    assert before.available and not before.present and before.valid is None
    await inspector.create_index_concurrently(statement)
    after = await inspector.index_present("public", statement.name)
    assert after.available and after.present and after.valid is True


async def test_dbinspect_presence_reads_never_raise_when_the_database_is_unreachable() -> None:
    unreachable = PostgresInspector("postgresql+psycopg://nobody@127.0.0.1:9/none", connect_timeout_s=1)
    try:
        for seen in (await unreachable.backend_present(42), await unreachable.index_present("public", "ix")):
            assert seen.available is False and "127.0.0.1:9" in seen.reason
    finally:
        await unreachable.aclose()
