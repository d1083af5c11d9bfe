"""The simulated app's database on a real PostgreSQL (``SimConfig.database_url``): real statements, real facts.

The simulator creates kamkmserve's tables (``database_schema``) with a hundred thousand orders, then runs the
scenario's statements in background threads so that an inspector reading ``pg_stat_activity``, ``pg_locks`` and
``pg_stat_user_tables`` sees what is really there:

* slow-query: the new release's lookup by ``user_id`` (no index) runs five times a second, so
  ``seq_scan`` really grows; every half second ``pg_index`` is checked for a valid index on that column. The
  app's checkout latency follows that check (the real table is a sample of production's, so its scan time is
  shown, not used).
* lock-contention: a session named ``kamkmserve-jobs:report-export`` updates a batch of paid orders and then
  sits idle in transaction; two writer threads run the app's ``PATCH /api/admin/orders/[id]`` UPDATE on those
  rows with ``lock_timeout`` and really fail while the lock is held. ``pg_terminate_backend`` on the blocker
  (through any inspector) really frees them.

Connections are not pooled (NullPool): what is closed is gone. ``close()`` stops the threads and closes every
connection (scenario reset and server stop call it). CPU stays modest: one scan of ~15 MB every 200 ms.
"""

from __future__ import annotations

import contextlib
import functools
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from kamkmserve_sim.database_inspect import Console, describe_error
from kamkmserve_sim.database_reports import (
    IndexReport,
    IndexRequest,
    LockReport,
    Presence,
    ScanReport,
    SessionReport,
    StatementReport,
)
from kamkmserve_sim.database_schema import (
    ANALYZE,
    APP_NAME,
    DDL,
    JOB_APP_PREFIX,
    LOCK_TIMEOUT_MS,
    PG_EXPORT_UPDATE,
    PG_LOCKED_IDS,
    PG_SLOW_COLUMN_INDEXED,
    PG_SLOW_COLUMN_INDEXES,
    PG_SLOW_QUERY,
    PG_STATUS_UPDATE,
    RESET_ORDER_COUNTERS,
    SEED,
    SLOW_COLUMN,
    USERS,
)

SLOW_QUERY_EVERY_S = 0.2
INDEX_CHECK_EVERY_S = 0.5
WRITE_PAUSE_S = 0.25
STUCK_WAIT_S = 0.5  # a writer waiting this long on its UPDATE counts as blocked before its timeout fires


class PostgresBackend:
    kind = "postgres"
    inspector_pid = None

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: Any = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._blocker: Any = None
        self.blocker_pid: int | None = None
        self.blocker_application: str | None = None
        self._indexed = False
        self.last_query_ms: float | None = None
        self.slow_queries = 0
        self._write_error: str | None = None
        self._waiting_since: dict[int, float] = {}
        self.writes_ok = 0
        self.writes_failed = 0
        self.last_error: str | None = None

    # -- plumbing --------------------------------------------------------------------------------------
    def _get_engine(self) -> Any:
        if self._engine is None:
            from sqlalchemy import create_engine
            from sqlalchemy.engine import make_url
            from sqlalchemy.pool import NullPool

            url = make_url(self.url)
            if url.drivername in {"postgresql", "postgres"}:
                url = url.set(drivername="postgresql+psycopg")
            self._engine = create_engine(url, poolclass=NullPool,
                                         connect_args={"connect_timeout": 3, "application_name": APP_NAME})
        return self._engine

    def _connect(self, application: str = APP_NAME) -> Any:
        conn = self._get_engine().connect()
        conn.exec_driver_sql(f"SET application_name = '{application}'")  # a constant of ours, not input
        conn.commit()
        return conn

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=self._guarded(target), name=f"sim-db-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _guarded(self, target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except Exception as exc:  # the database went away (dropped, restarted): say so, never crash the sim
                self.last_error = describe_error(exc)
        return run

    # -- what the scenarios do to it ----------------------------------------------------------------------
    def prepare(self) -> None:
        """Create the schema and its rows once (idempotent); on a database used before, reset the order table's
        scan counters so that a scenario's statistics are its own."""
        from sqlalchemy import text

        with self._get_engine().connect() as conn:
            for statement in DDL:
                conn.execute(text(statement))
            seeded = not conn.execute(text('SELECT EXISTS (SELECT 1 FROM "kamkmserve_order")')).scalar()
            if seeded:
                for statement in SEED:
                    conn.execute(text(statement))  # text(): SQLAlchemy escapes the modulo signs for psycopg
            conn.commit()
        with self._get_engine().connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            if not seeded:
                with contextlib.suppress(Exception):  # needs superuser or a grant; stale counters are survivable
                    conn.execute(text(RESET_ORDER_COUNTERS)).all()
            conn.execute(text(ANALYZE))  # n_live_tup, and plans that know the table is big

    def start_slow_query(self, active: Callable[[], bool]) -> None:
        """Drop any index a previous run left on the slow column, then run the release's query while ``active``."""
        from sqlalchemy import text

        with self._get_engine().connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for name in conn.execute(text(PG_SLOW_COLUMN_INDEXES), {"column": SLOW_COLUMN}).scalars().all():
                conn.exec_driver_sql(f'DROP INDEX CONCURRENTLY IF EXISTS "{name}"')
        self._indexed = False
        self._spawn("slow-query", lambda: self._slow_query_loop(active))

    def _slow_query_loop(self, active: Callable[[], bool]) -> None:
        from sqlalchemy import text

        rng = random.Random(11)
        conn = self._connect()
        try:
            next_check = 0.0
            while not self._stop.is_set():
                if time.monotonic() >= next_check:
                    self._indexed = bool(conn.execute(text(PG_SLOW_COLUMN_INDEXED), {"column": SLOW_COLUMN}).scalar())
                    conn.commit()
                    next_check = time.monotonic() + INDEX_CHECK_EVERY_S
                if active():
                    user = f"usr_{1 + rng.randrange(USERS):06d}"
                    started = time.perf_counter()
                    conn.execute(text(PG_SLOW_QUERY), {"user_id": user, "limit": 5}).all()
                    conn.commit()
                    self.last_query_ms = round((time.perf_counter() - started) * 1000, 2)
                    self.slow_queries += 1
                self._stop.wait(SLOW_QUERY_EVERY_S)
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    def start_blocker(self, job: str) -> None:
        self._spawn("blocker", lambda: self._block(job))

    def _block(self, job: str) -> None:
        from sqlalchemy import text

        application = f"{JOB_APP_PREFIX}{job}"
        conn = self._connect(application)
        with self._lock:
            if self._stop.is_set():
                conn.close()
                return
            self._blocker = conn
        ids = list(conn.execute(text(PG_LOCKED_IDS)).scalars().all())
        conn.execute(text(PG_EXPORT_UPDATE), {"metadata": '{"exported":true}', "status": "PAID"})
        # No commit: the job now waits on something outside the database with its transaction open.
        self.blocker_pid = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
        self.blocker_application = application
        for n in range(2):
            self._spawn(f"writer-{n}", functools.partial(self._write_loop, n, ids))

    def _write_loop(self, n: int, ids: list[str]) -> None:
        from sqlalchemy import text

        rng = random.Random(100 + n)
        self._stop.wait(n * LOCK_TIMEOUT_MS / 2000)  # staggered: one of the two is nearly always waiting
        conn = self._connect()
        try:
            conn.exec_driver_sql(f"SET lock_timeout = '{LOCK_TIMEOUT_MS}ms'")
            conn.commit()
            while not self._stop.is_set() and ids:
                self._waiting_since[n] = time.monotonic()
                try:
                    conn.execute(text(PG_STATUS_UPDATE), {"status": "PAID", "id": rng.choice(ids)}).all()
                    conn.commit()
                except Exception as exc:
                    with contextlib.suppress(Exception):
                        conn.rollback()
                    self._write_error = _primary_message(exc)
                    self.writes_failed += 1
                    pause = 0.02
                else:
                    self._write_error = None
                    self.writes_ok += 1
                    pause = WRITE_PAUSE_S
                finally:
                    self._waiting_since.pop(n, None)
                self._stop.wait(pause)
        finally:
            with contextlib.suppress(Exception):
                conn.close()

    def slow_column_indexed(self) -> bool:
        return self._indexed

    def note_slow_query(self, duration_ms: int, indexed: bool) -> None:
        """The real statement runs in its own thread; requests only read its outcome."""

    def write_blocked(self) -> str | None:
        now = time.monotonic()
        if any(now - since > STUCK_WAIT_S for since in list(self._waiting_since.values())):
            return self._write_error or "canceling statement due to lock timeout"
        return self._write_error

    def note_write(self, blocked: bool) -> None:
        """The writer threads run the real UPDATEs."""

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            blocker, self._blocker = self._blocker, None
        if blocker is not None:  # roll back first: the waiting writers get their lock and notice the stop
            with contextlib.suppress(Exception):
                blocker.rollback()
            with contextlib.suppress(Exception):
                blocker.close()
        for thread in self._threads:
            thread.join(LOCK_TIMEOUT_MS / 1000 + 2)
        self._threads.clear()
        if self._engine is not None:
            engine, self._engine = self._engine, None
            engine.dispose()

    # -- what an inspector reads: the database console, one connection per call ------------------------------
    async def blocking_locks(self) -> LockReport:
        return await Console(self.url).blocking_locks()

    async def long_running(self, min_seconds: float) -> SessionReport:
        return await Console(self.url).long_running(min_seconds)

    async def scan_stats(self, min_seq_scans: int) -> ScanReport:
        return await Console(self.url).scan_stats(min_seq_scans)

    async def unused_indexes(self) -> IndexReport:
        return await Console(self.url).unused_indexes()

    async def top_statements(self, limit: int) -> StatementReport:
        return await Console(self.url).top_statements(limit)

    async def backend_present(self, pid: int) -> Presence:
        return await Console(self.url).backend_present(pid)

    async def index_present(self, schema_name: str, name: str) -> Presence:
        return await Console(self.url).index_present(schema_name, name)

    async def terminate_backend(self, pid: int) -> bool:
        return await Console(self.url).terminate_backend(pid)

    async def create_index_concurrently(self, statement: IndexRequest) -> bool:
        await Console(self.url).create_index_concurrently(statement)
        return True

    def public(self) -> dict[str, object]:
        return {"inspector_pid": None,
                "blocker": ({"pid": self.blocker_pid, "application": self.blocker_application}
                            if self.blocker_pid is not None else None),
                "writes_blocked": self.write_blocked() is not None,
                "writes_ok": self.writes_ok, "writes_failed": self.writes_failed,
                "slow_column_indexed": self._indexed, "slow_queries": self.slow_queries,
                "last_query_ms": self.last_query_ms, "last_error": self.last_error}


def _primary_message(exc: BaseException) -> str:
    """PostgreSQL's own message (``canceling statement due to lock timeout``), as the app's driver reports it."""
    orig = getattr(exc, "orig", exc)
    diag = getattr(orig, "diag", None)
    primary = getattr(diag, "message_primary", None)
    return str(primary or str(orig).splitlines()[0] or type(orig).__name__)
