"""Database capability: what is blocking, what runs too long, what scans too much, and two repairs.

Reads (:class:`DatabaseInspector`) never raise: a wedged or unreachable database is a reading with
``available=False`` and a ``reason``. Repairs (:class:`DatabaseActions`) raise :class:`DatabaseActionError`.
:class:`PostgresInspector` implements both over a lazily created SQLAlchemy engine, run in a worker thread.
Its sessions identify as ``remediation-inspector``, carry a statement and lock timeout, and leave
themselves out of every report.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from remediation.providers import dbqueries as q
from remediation.providers.dbqueries import (
    IndexReport,
    IndexUsage,
    LockHolder,
    LockReport,
    LockWait,
    Presence,
    ScanReport,
    SessionInfo,
    SessionReport,
    StatementReport,
    StatementStats,
    TableScanStats,
)
from remediation.sqlindex import CreateIndex

__all__ = [
    "PG_STAT_STATEMENTS_MISSING",
    "CreateIndex",
    "DatabaseActionError",
    "IndexReport",
    "IndexUsage",
    "LockHolder",
    "LockReport",
    "LockWait",
    "PostgresInspector",
    "Presence",
    "ScanReport",
    "SessionInfo",
    "SessionReport",
    "StatementReport",
    "StatementStats",
    "TableScanStats",
]

PG_STAT_STATEMENTS_MISSING = "pg_stat_statements is not installed in this database"


class DatabaseActionError(RuntimeError):
    """A database repair failed; the message says which one and why."""


_T = TypeVar("_T")


def describe_error(exc: BaseException) -> str:
    """One line for an operator: the driver's message without SQLAlchemy's SQL echo and help link."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip() or type(exc).__name__
    first = text.splitlines()[0].strip()
    return f"{type(orig if orig is not None else exc).__name__}: {first}"[:300]


class PostgresInspector:
    """:class:`DatabaseInspector` and :class:`DatabaseActions` for PostgreSQL (SQLAlchemy + psycopg 3)."""

    def __init__(
        self,
        url: str,
        *,
        statement_timeout_s: float = 5.0,
        connect_timeout_s: int = 3,
        index_timeout_s: float = 0.0,  # 0: no limit for CREATE INDEX CONCURRENTLY
        terminate_wait_s: float = 5.0,
        small_table_rows: int = 1000,
        scan_limit: int = 50,
    ) -> None:
        self.url = url
        self.statement_timeout_s = statement_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.index_timeout_s = index_timeout_s
        self.terminate_wait_s = terminate_wait_s
        self.small_table_rows = small_table_rows
        self.scan_limit = scan_limit
        self._engine: Any = None

    # -- plumbing -----------------------------------------------------------------------------------
    def _get_engine(self) -> Any:
        if self._engine is None:
            from sqlalchemy import create_engine

            from remediation.store.engine import normalize_url

            url = normalize_url(self.url)
            timeout_ms = max(1, int(self.statement_timeout_s * 1000))
            self._engine = create_engine(
                url,
                pool_pre_ping=True,
                pool_size=2,
                max_overflow=2,
                connect_args={
                    "connect_timeout": self.connect_timeout_s,
                    "application_name": q.APP_NAME,
                    "options": f"-c statement_timeout={timeout_ms} -c lock_timeout={timeout_ms}",
                },
            )
        return self._engine

    def _redacted_url(self) -> str:
        try:
            from sqlalchemy.engine import make_url

            return make_url(self.url).render_as_string(hide_password=True)
        except Exception:
            return "<unparseable database URL>"

    def _read(self, fn: Callable[[Any], _T]) -> _T:
        from sqlalchemy import text

        with self._get_engine().connect() as conn:
            conn.execute(text("SELECT pg_stat_clear_snapshot()"))
            result = fn(conn)
            conn.rollback()
            return result

    async def _reading(self, what: str, fn: Callable[[Any], _T], failed: Callable[[str], _T]) -> _T:
        try:
            return await asyncio.to_thread(self._read, fn)
        except Exception as exc:
            return failed(f"{what} failed on {self._redacted_url()}: {describe_error(exc)}")

    async def aclose(self) -> None:
        if self._engine is not None:
            engine, self._engine = self._engine, None
            await asyncio.to_thread(engine.dispose)

    # -- DatabaseInspector ----------------------------------------------------------------------------
    async def blocking_locks(self) -> LockReport:
        def read(conn: Any) -> LockReport:
            from sqlalchemy import text

            rows = conn.execute(text(q.BLOCKED_SESSIONS)).mappings().all()
            pids = sorted({pid for row in rows for pid in row["blocking_pids"]})
            holders: dict[int, LockHolder] = {}
            if pids:
                for h in conn.execute(text(q.SESSIONS_BY_PID), {"pids": pids}).mappings():
                    holders[h["pid"]] = LockHolder(
                        pid=h["pid"], state=h["state"], query=h["query"] or "", user=h["usename"],
                        application=h["application_name"], xact_seconds=_f(h["xact_s"]),
                        state_seconds=_f(h["state_s"]),
                    )
            waits = tuple(
                LockWait(
                    blocked_pid=r["blocked_pid"], blocked_query=r["blocked_query"] or "",
                    blocked_user=r["blocked_user"], blocked_application=r["blocked_application"],
                    waited_seconds=_f(r["waited_s"]), lock_type=r["lock_type"], lock_mode=r["lock_mode"],
                    relation=r["relation"], blocking_pids=tuple(r["blocking_pids"]),
                    blockers=tuple(holders.get(pid, LockHolder(pid=pid)) for pid in r["blocking_pids"]),
                )
                for r in rows
            )
            return LockReport(available=True, waits=waits)

        return await self._reading("blocking_locks", read, lambda why: LockReport(available=False, reason=why))

    async def long_running(self, min_seconds: float) -> SessionReport:
        def read(conn: Any) -> SessionReport:
            from sqlalchemy import text

            rows = conn.execute(text(q.LONG_RUNNING), {"app": q.APP_NAME, "min_seconds": min_seconds}).mappings()
            sessions = tuple(
                SessionInfo(
                    pid=r["pid"], state=r["state"], query=r["query"] or "", user=r["usename"],
                    application=r["application_name"], duration_seconds=float(r["duration_s"]),
                    xact_seconds=_f(r["xact_s"]), state_seconds=_f(r["state_s"]),
                    wait_event_type=r["wait_event_type"], wait_event=r["wait_event"],
                )
                for r in rows
            )
            return SessionReport(available=True, min_seconds=min_seconds, sessions=sessions)

        return await self._reading(
            "long_running", read, lambda why: SessionReport(available=False, reason=why, min_seconds=min_seconds)
        )

    async def scan_stats(self, min_seq_scans: int) -> ScanReport:
        def read(conn: Any) -> ScanReport:
            from sqlalchemy import text

            params = {"min_seq_scans": min_seq_scans, "limit": self.scan_limit}
            rows = conn.execute(text(q.SCAN_STATS), params).mappings()
            tables = tuple(q.judge_scan(r, self.small_table_rows) for r in rows)
            return ScanReport(available=True, min_seq_scans=min_seq_scans, tables=tables)

        return await self._reading(
            "scan_stats", read, lambda why: ScanReport(available=False, reason=why, min_seq_scans=min_seq_scans)
        )

    async def unused_indexes(self) -> IndexReport:
        def read(conn: Any) -> IndexReport:
            from sqlalchemy import text

            since = conn.execute(text(q.STATS_SINCE)).scalar()
            indexes = tuple(
                IndexUsage(
                    schema_name=r["schemaname"], table=r["relname"], index=r["indexrelname"],
                    idx_scan=int(r["idx_scan"]), size_bytes=int(r["size_bytes"]), definition=r["definition"],
                )
                for r in conn.execute(text(q.UNUSED_INDEXES)).mappings()
            )
            return IndexReport(available=True, stats_since=since, indexes=indexes)

        return await self._reading("unused_indexes", read, lambda why: IndexReport(available=False, reason=why))

    async def top_statements(self, limit: int) -> StatementReport:
        def read(conn: Any) -> StatementReport:
            from sqlalchemy import text

            schema = conn.execute(text(q.EXTENSION_SCHEMA)).scalar()
            if schema is None:
                return StatementReport(available=False, reason=PG_STAT_STATEMENTS_MISSING)
            try:
                rows = conn.execute(text(q.top_statements_sql(schema)), {"limit": limit}).mappings().all()
            except Exception as exc:  # typically: installed but not in shared_preload_libraries
                return StatementReport(
                    available=False,
                    reason=f"pg_stat_statements is installed but cannot be read: {describe_error(exc)}",
                )
            statements = tuple(
                StatementStats(
                    queryid=r["queryid"], query=r["query"] or "", calls=int(r["calls"]),
                    total_exec_ms=float(r["total_exec_time"]), mean_exec_ms=float(r["mean_exec_time"]),
                    rows=int(r["rows"]),
                )
                for r in rows
            )
            return StatementReport(available=True, statements=statements)

        return await self._reading("top_statements", read, lambda why: StatementReport(available=False, reason=why))

    async def backend_present(self, pid: int) -> Presence:
        def read(conn: Any) -> Presence:
            from sqlalchemy import text

            state = conn.execute(text(q.BACKEND_STATE), {"pid": pid}).first()
            return Presence(available=True, present=state is not None, detail=str(state[0] or "") if state else "")

        return await self._reading(f"backend_present({pid})", read, lambda why: Presence(available=False, reason=why))

    async def index_present(self, schema_name: str, name: str) -> Presence:
        def read(conn: Any) -> Presence:
            from sqlalchemy import text

            valid = conn.execute(text(q.INDEX_VALIDITY), {"schema": schema_name, "name": name}).first()
            return Presence(available=True, present=valid is not None, valid=bool(valid[0]) if valid else None)

        return await self._reading(f"index_present({schema_name}.{name})", read,
                                   lambda why: Presence(available=False, reason=why))

    # -- DatabaseActions ------------------------------------------------------------------------------
    async def terminate_backend(self, pid: int) -> bool:
        if pid <= 0:
            raise DatabaseActionError(f"terminate_backend({pid}): not a backend pid")

        def act(conn: Any) -> bool:
            from sqlalchemy import text

            if conn.execute(text("SELECT pg_backend_pid()")).scalar() == pid:
                raise DatabaseActionError(f"terminate_backend({pid}): refusing to terminate the inspector itself")
            wait_ms = int(self.terminate_wait_s * 1000)
            stmt = text("SELECT pg_terminate_backend(:pid, :wait_ms)")
            return bool(conn.execute(stmt, {"pid": pid, "wait_ms": wait_ms}).scalar())

        return await self._acting(f"terminate_backend({pid})", act)

    async def create_index_concurrently(self, statement: CreateIndex) -> None:
        def act(conn: Any) -> None:
            from sqlalchemy import text

            timeout_ms = int(self.index_timeout_s * 1000)  # an int: safe to format into SET
            conn.exec_driver_sql(f"SET statement_timeout = {timeout_ms}")
            conn.exec_driver_sql(f"SET lock_timeout = {timeout_ms}")
            try:
                conn.exec_driver_sql(statement.sql)
                valid = conn.execute(
                    text(q.INDEX_VALIDITY), {"schema": statement.schema_name, "name": statement.name}
                ).scalar()
            finally:
                conn.exec_driver_sql("RESET statement_timeout")
                conn.exec_driver_sql("RESET lock_timeout")
            if valid is None:
                raise DatabaseActionError(f"{statement.sql}: the index does not exist afterwards")
            if not valid:
                raise DatabaseActionError(
                    f"{statement.sql}: index {statement.name!r} exists but is INVALID (a failed earlier build?); "
                    "drop it with DROP INDEX CONCURRENTLY and retry"
                )

        await self._acting(statement.sql, act)

    async def _acting(self, what: str, fn: Callable[[Any], _T]) -> _T:
        def run() -> _T:
            # AUTOCOMMIT: CREATE INDEX CONCURRENTLY cannot run inside a transaction block.
            with self._get_engine().connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                return fn(conn)

        try:
            return await asyncio.to_thread(run)
        except DatabaseActionError:
            raise
        except Exception as exc:
            raise DatabaseActionError(f"{what} failed on {self._redacted_url()}: {describe_error(exc)}") from exc


def _f(value: Any) -> float | None:
    return None if value is None else float(value)
