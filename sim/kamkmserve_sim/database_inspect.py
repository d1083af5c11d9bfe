"""What ``/_sim/database/...`` answers on a real PostgreSQL: the catalogs read with the simulator's own SQL.

The simulated platform's database console looks at ``pg_stat_activity``, ``pg_locks``, ``pg_stat_user_tables``,
``pg_stat_user_indexes`` and ``pg_stat_statements`` the way a DBA's console would, and runs the two repairs it
offers (``pg_terminate_backend``, ``CREATE INDEX CONCURRENTLY``). Every call opens its own connection and closes it
(NullPool): nothing the console did outlives the request. Reads never raise: an unreadable database is a report
with ``available=False`` and the reason; a failed repair raises :class:`Refused` with the database's reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from kamkmserve_sim.database_reports import (
    PG_STAT_STATEMENTS_MISSING,
    IndexReport,
    IndexRequest,
    IndexUsage,
    LockHolder,
    LockReport,
    LockWait,
    Presence,
    Refused,
    ScanReport,
    SessionInfo,
    SessionReport,
    StatementReport,
    StatementStats,
    judge_scan,
    quote_ident,
)

#: The console's own sessions carry this name, and it leaves them out of what it reports.
CONSOLE_APP = "kamkmserve-sim-console"
STATEMENT_TIMEOUT_MS = 5000
SMALL_TABLE_ROWS = 1000
SCAN_LIMIT = 50
TERMINATE_WAIT_MS = 5000
_T = TypeVar("_T")

# One row per session waiting on a heavyweight lock, with the pids that block it.
_WAITERS = """
SELECT w.pid, w.query, w.usename, w.application_name, l.locktype, l.mode, l.relation,
       EXTRACT(EPOCH FROM (clock_timestamp() - COALESCE(l.waitstart, w.state_change))) AS waited_s,
       pg_blocking_pids(w.pid) AS blockers
FROM pg_stat_activity w
LEFT JOIN LATERAL (
    SELECT p.locktype, p.mode, p.waitstart,
           CASE WHEN p.relation IS NOT NULL THEN p.relation::regclass::text END AS relation
    FROM pg_locks p WHERE p.pid = w.pid AND NOT p.granted LIMIT 1
) l ON true
WHERE w.datname = current_database() AND w.pid <> pg_backend_pid()
  AND w.wait_event_type = 'Lock' AND cardinality(pg_blocking_pids(w.pid)) > 0
ORDER BY waited_s DESC NULLS LAST, w.pid
"""
_HOLDERS = """
SELECT pid, state, query, usename, application_name,
       EXTRACT(EPOCH FROM (clock_timestamp() - xact_start)) AS xact_s,
       EXTRACT(EPOCH FROM (clock_timestamp() - state_change)) AS state_s
FROM pg_stat_activity WHERE pid = ANY(:pids)
"""
# Queries active for at least :min_seconds, and transactions left idle that long (they hold locks and snapshots).
_LONG_RUNNING = """
SELECT * FROM (
    SELECT pid, state, query, usename, application_name, wait_event_type, wait_event,
           EXTRACT(EPOCH FROM (clock_timestamp() - xact_start)) AS xact_s,
           EXTRACT(EPOCH FROM (clock_timestamp() - state_change)) AS state_s,
           EXTRACT(EPOCH FROM (clock_timestamp() - CASE WHEN state = 'active' THEN query_start
                                                        ELSE xact_start END)) AS duration_s
    FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'
      AND COALESCE(application_name, '') <> :console
      AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)')
) s
WHERE duration_s >= :min_seconds
ORDER BY duration_s DESC, pid
"""
_SCANS = """
SELECT schemaname, relname, seq_scan, seq_tup_read, COALESCE(idx_scan, 0) AS idx_scan, n_live_tup,
       (SELECT count(*) FROM pg_index i WHERE i.indrelid = t.relid) AS index_count
FROM pg_stat_user_tables t
WHERE seq_scan >= :min_seq_scans
ORDER BY seq_tup_read DESC, seq_scan DESC, schemaname, relname
LIMIT :limit
"""
# Valid indexes never scanned that enforce nothing (not unique or primary, backing no constraint).
_UNUSED = """
SELECT s.schemaname, s.relname, s.indexrelname, s.idx_scan, pg_relation_size(s.indexrelid) AS size_bytes,
       pg_get_indexdef(s.indexrelid) AS definition
FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid
WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary AND i.indisvalid
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = s.indexrelid)
ORDER BY pg_relation_size(s.indexrelid) DESC, s.schemaname, s.relname, s.indexrelname
"""
_STATS_RESET = "SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()"
_STATEMENTS_SCHEMA = """
SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = 'pg_stat_statements'
"""
_BACKEND = "SELECT state FROM pg_stat_activity WHERE pid = :pid"
_INDEX_VALID = """
SELECT i.indisvalid FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = :schema AND c.relname = :name
"""


def _statements_sql(schema: str) -> str:
    # pg_stat_statements lives in whatever schema it was created in: the name comes from the catalog, quoted.
    return f"""
SELECT queryid, query, calls, total_exec_time, mean_exec_time, rows
FROM {quote_ident(schema)}.pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY total_exec_time DESC
LIMIT :limit
"""


def describe_error(exc: BaseException) -> str:
    """One line: the driver's message without SQLAlchemy's SQL echo and help link."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip() or type(exc).__name__
    return f"{type(orig if orig is not None else exc).__name__}: {text.splitlines()[0].strip()}"[:300]


class Console:
    """The database console on ``url``: one connection per call."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _engine(self) -> Any:
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url
        from sqlalchemy.pool import NullPool

        url = make_url(self.url)
        if url.drivername in {"postgresql", "postgres"}:
            url = url.set(drivername="postgresql+psycopg")
        return create_engine(url, poolclass=NullPool, connect_args={
            "connect_timeout": 3, "application_name": CONSOLE_APP,
            "options": f"-c statement_timeout={STATEMENT_TIMEOUT_MS} -c lock_timeout={STATEMENT_TIMEOUT_MS}"})

    def _where(self) -> str:
        from sqlalchemy.engine import make_url

        try:
            return make_url(self.url).render_as_string(hide_password=True)
        except Exception:
            return "<unparseable database URL>"

    async def _read(self, what: str, fn: Callable[[Any], _T], failed: Callable[[str], _T]) -> _T:
        def run() -> _T:
            from sqlalchemy import text

            engine = self._engine()
            try:
                with engine.connect() as conn:
                    conn.execute(text("SELECT pg_stat_clear_snapshot()"))  # fresh statistics, not the cached ones
                    result = fn(conn)
                    conn.rollback()
                    return result
            finally:
                engine.dispose()

        try:
            return await asyncio.to_thread(run)
        except Exception as exc:
            return failed(f"{what} failed on {self._where()}: {describe_error(exc)}")

    async def _act(self, what: str, fn: Callable[[Any], _T]) -> _T:
        def run() -> _T:
            engine = self._engine()
            try:
                # AUTOCOMMIT: CREATE INDEX CONCURRENTLY cannot run inside a transaction block.
                with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    return fn(conn)
            finally:
                engine.dispose()

        try:
            return await asyncio.to_thread(run)
        except Refused:
            raise
        except Exception as exc:
            raise Refused(f"{what} failed on {self._where()}: {describe_error(exc)}") from exc

    async def blocking_locks(self) -> LockReport:
        def read(conn: Any) -> LockReport:
            from sqlalchemy import text

            rows = conn.execute(text(_WAITERS)).mappings().all()
            pids = sorted({pid for row in rows for pid in row["blockers"]})
            holders = {h["pid"]: LockHolder(pid=h["pid"], state=h["state"], query=h["query"] or "",
                                            user=h["usename"], application=h["application_name"],
                                            xact_seconds=_f(h["xact_s"]), state_seconds=_f(h["state_s"]))
                       for h in (conn.execute(text(_HOLDERS), {"pids": pids}).mappings() if pids else ())}
            return LockReport(available=True, waits=tuple(
                LockWait(blocked_pid=r["pid"], blocked_query=r["query"] or "", blocked_user=r["usename"],
                         blocked_application=r["application_name"], waited_seconds=_f(r["waited_s"]),
                         lock_type=r["locktype"], lock_mode=r["mode"], relation=r["relation"],
                         blocking_pids=tuple(r["blockers"]),
                         blockers=tuple(holders.get(pid, LockHolder(pid=pid)) for pid in r["blockers"]))
                for r in rows))

        return await self._read("blocking_locks", read, lambda why: LockReport(available=False, reason=why))

    async def long_running(self, min_seconds: float) -> SessionReport:
        def read(conn: Any) -> SessionReport:
            from sqlalchemy import text

            rows = conn.execute(text(_LONG_RUNNING), {"console": CONSOLE_APP, "min_seconds": min_seconds}).mappings()
            return SessionReport(available=True, min_seconds=min_seconds, sessions=tuple(
                SessionInfo(pid=r["pid"], state=r["state"], query=r["query"] or "", user=r["usename"],
                            application=r["application_name"], duration_seconds=float(r["duration_s"]),
                            xact_seconds=_f(r["xact_s"]), state_seconds=_f(r["state_s"]),
                            wait_event_type=r["wait_event_type"], wait_event=r["wait_event"])
                for r in rows))

        return await self._read("long_running", read,
                                lambda why: SessionReport(available=False, reason=why, min_seconds=min_seconds))

    async def scan_stats(self, min_seq_scans: int) -> ScanReport:
        def read(conn: Any) -> ScanReport:
            from sqlalchemy import text

            rows = conn.execute(text(_SCANS), {"min_seq_scans": min_seq_scans, "limit": SCAN_LIMIT}).mappings()
            return ScanReport(available=True, min_seq_scans=min_seq_scans,
                              tables=tuple(judge_scan(r, SMALL_TABLE_ROWS) for r in rows))

        return await self._read("scan_stats", read,
                                lambda why: ScanReport(available=False, reason=why, min_seq_scans=min_seq_scans))

    async def unused_indexes(self) -> IndexReport:
        def read(conn: Any) -> IndexReport:
            from sqlalchemy import text

            since = conn.execute(text(_STATS_RESET)).scalar()
            return IndexReport(available=True, stats_since=since, indexes=tuple(
                IndexUsage(schema_name=r["schemaname"], table=r["relname"], index=r["indexrelname"],
                           idx_scan=int(r["idx_scan"]), size_bytes=int(r["size_bytes"]), definition=r["definition"])
                for r in conn.execute(text(_UNUSED)).mappings()))

        return await self._read("unused_indexes", read, lambda why: IndexReport(available=False, reason=why))

    async def top_statements(self, limit: int) -> StatementReport:
        def read(conn: Any) -> StatementReport:
            from sqlalchemy import text

            schema = conn.execute(text(_STATEMENTS_SCHEMA)).scalar()
            if schema is None:
                return StatementReport(available=False, reason=PG_STAT_STATEMENTS_MISSING)
            try:
                rows = conn.execute(text(_statements_sql(schema)), {"limit": limit}).mappings().all()
            except Exception as exc:  # typically: installed but not in shared_preload_libraries
                why = f"pg_stat_statements is installed but cannot be read: {describe_error(exc)}"
                return StatementReport(available=False, reason=why)
            return StatementReport(available=True, statements=tuple(
                StatementStats(queryid=r["queryid"], query=r["query"] or "", calls=int(r["calls"]),
                               total_exec_ms=float(r["total_exec_time"]), mean_exec_ms=float(r["mean_exec_time"]),
                               rows=int(r["rows"]))
                for r in rows))

        return await self._read("top_statements", read, lambda why: StatementReport(available=False, reason=why))

    async def backend_present(self, pid: int) -> Presence:
        def read(conn: Any) -> Presence:
            from sqlalchemy import text

            state = conn.execute(text(_BACKEND), {"pid": pid}).first()
            return Presence(available=True, present=state is not None, detail=str(state[0] or "") if state else "")

        return await self._read(f"backend_present({pid})", read, lambda why: Presence(available=False, reason=why))

    async def index_present(self, schema_name: str, name: str) -> Presence:
        def read(conn: Any) -> Presence:
            from sqlalchemy import text

            valid = conn.execute(text(_INDEX_VALID), {"schema": schema_name, "name": name}).first()
            return Presence(available=True, present=valid is not None, valid=bool(valid[0]) if valid else None)

        return await self._read(f"index_present({schema_name}.{name})", read,
                                lambda why: Presence(available=False, reason=why))

    async def terminate_backend(self, pid: int) -> bool:
        if pid <= 0:
            raise Refused(f"terminate_backend({pid}): not a backend pid")

        def act(conn: Any) -> bool:
            from sqlalchemy import text

            if conn.execute(text("SELECT pg_backend_pid()")).scalar() == pid:
                raise Refused(f"terminate_backend({pid}): refusing to terminate the inspector itself")
            stmt = text("SELECT pg_terminate_backend(:pid, :wait_ms)")
            return bool(conn.execute(stmt, {"pid": pid, "wait_ms": TERMINATE_WAIT_MS}).scalar())

        return await self._act(f"terminate_backend({pid})", act)

    async def create_index_concurrently(self, statement: IndexRequest) -> None:
        def act(conn: Any) -> None:
            from sqlalchemy import text

            # A concurrent build on a big table takes as long as it takes: no statement or lock timeout.
            conn.exec_driver_sql("SET statement_timeout = 0")
            conn.exec_driver_sql("SET lock_timeout = 0")
            conn.exec_driver_sql(statement.sql)
            valid = conn.execute(text(_INDEX_VALID), {"schema": statement.schema_name, "name": statement.name}).scalar()
            if valid is None:
                raise Refused(f"{statement.sql}: the index does not exist afterwards")
            if not valid:
                raise Refused(f"{statement.sql}: index {statement.name!r} exists but is INVALID (a failed earlier "
                              "build?); drop it with DROP INDEX CONCURRENTLY and retry")

        await self._act(statement.sql, act)


def _f(value: Any) -> float | None:
    return None if value is None else float(value)
