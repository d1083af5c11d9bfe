"""The simulated app's database and background jobs, as the app, the scenarios and the control plane meet them.

One interface, two backends: real PostgreSQL when ``SimConfig.database_url`` is set (``database_pg``), facts in
memory otherwise (``database_memory``). Either way the app's routes see the same thing through :meth:`run`:

* slow-query (release v1.6.0 current): ``POST /api/checkout`` first runs the release's lookup of the
  customer's orders by ``user_id``. Without an index it takes about 1.2 s (more while the heavy
  ``report-export`` job runs), so the request passes 1 s; with a valid index it takes milliseconds.
* lock-contention: ``PATCH /api/admin/orders/[id]`` runs ``UPDATE kamkmserve_order``; while the stuck job holds
  its row locks the UPDATE waits ``LOCK_TIMEOUT_MS`` and fails with PostgreSQL's
  ``canceling statement due to lock timeout`` (thrown as ``NeonDbError``), and the handler answers
  ``500 {"error":"Failed to update order"}``.

In request-metrics mode the app shows it the way src/lib/metrics.ts and the ``db.execute`` wrapper would
(docs/reference/kamkmserve.md §2.3, §3.2): ``Database operation: <OP> on <table>``, ``DB <OP> on <table> failed`` with
``{ duration }``, ``db_operation_duration``/``db_operation_count`` samples with ``success="false"``,
``Slow database operation: …`` over 500 ms, ``Database operation failed: …``, and ``Slow request detected``
over 1000 ms. In as-is mode none of that exists (§3.3): the request only fails or is slow, the handler's
``console.error(e)`` reaches stderr, and Sentry still sees exceptions (and, from its tracing, slow DB spans).
Outside these two scenarios :meth:`run` returns None without drawing a random number, so the other scenarios'
traffic is exactly what it was.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from kamkmserve_sim.collector import AppError
from kamkmserve_sim.database_jobs import JobPools
from kamkmserve_sim.database_memory import MemoryBackend
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
    LOCK_TIMEOUT_MS,
    ORDER_TABLE,
    SLOW_QUERY,
    lock_timeout_error,
)

if TYPE_CHECKING:
    from kamkmserve_sim.clock import Clock
    from kamkmserve_sim.config import SimConfig
    from kamkmserve_sim.platform import ErrorTracker, ReleaseBook
    from kamkmserve_sim.routes import AppRequest, RouteEnv

DbFault = Literal["slow-query", "lock-contention"]
SLOW_QUERY_MEDIAN_MS = 1150.0
HEAVY_WORKER_LOAD = 0.1  # each heavy job worker makes the slow query this much slower
# tracesSampleRate in production (docs/reference/kamkmserve.md §9): Sentry sees one slow span in ten.
SENTRY_TRACE_SHARE = 0.1
CHECKOUT = ("POST", "/api/checkout")
ORDER_ITEM_PREFIX = "/api/admin/orders/"


@dataclass(frozen=True)
class DbRun:
    """What the scenario's database did to one handler: extra time, and the error its query threw (if any)."""

    extra_ms: int
    error: AppError | None = None


class Backend(Protocol):
    @property
    def kind(self) -> str: ...
    @property
    def inspector_pid(self) -> int | None: ...

    def prepare(self) -> None: ...
    def start_slow_query(self, active: Callable[[], bool]) -> None: ...
    def start_blocker(self, job: str) -> None: ...
    def slow_column_indexed(self) -> bool: ...
    def note_slow_query(self, duration_ms: int, indexed: bool) -> None: ...
    def write_blocked(self) -> str | None: ...
    def note_write(self, blocked: bool) -> None: ...
    def close(self) -> None: ...
    async def blocking_locks(self) -> LockReport: ...
    async def long_running(self, min_seconds: float) -> SessionReport: ...
    async def scan_stats(self, min_seq_scans: int) -> ScanReport: ...
    async def unused_indexes(self) -> IndexReport: ...
    async def top_statements(self, limit: int) -> StatementReport: ...
    async def backend_present(self, pid: int) -> Presence: ...
    async def index_present(self, schema_name: str, name: str) -> Presence: ...
    async def terminate_backend(self, pid: int) -> bool: ...
    async def create_index_concurrently(self, statement: IndexRequest) -> bool: ...
    def public(self) -> dict[str, object]: ...


class AppDatabase:
    def __init__(self, config: SimConfig, clock: Clock, releases: ReleaseBook, errors: ErrorTracker,
                 seed: int) -> None:
        self.releases = releases
        self.errors = errors
        self.jobs = JobPools()
        self.fault: DbFault | None = None
        self.slow_release_id: str | None = None
        self.backend: Backend
        if config.database_url:
            from kamkmserve_sim.database_pg import PostgresBackend

            self.backend = PostgresBackend(config.database_url)
        else:
            self.backend = _memory(clock, seed)

    # -- scenarios ------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Build what the backend needs before a database scenario starts (real PostgreSQL: schema and rows)."""
        self.backend.prepare()

    def begin_slow_query(self, release_id: str) -> None:
        self.fault = "slow-query"
        self.slow_release_id = release_id
        self.backend.start_slow_query(self._slow_release_current)

    def begin_lock_contention(self, job: str = "report-export") -> None:
        self.fault = "lock-contention"
        self.backend.start_blocker(job)

    def _slow_release_current(self) -> bool:
        return self.slow_release_id is not None and self.releases.current_id == self.slow_release_id

    def close(self) -> None:
        self.backend.close()

    # -- the app's handlers ---------------------------------------------------------------------------
    def run(self, request: AppRequest, operation: str, table: str, env: RouteEnv) -> DbRun | None:
        """The scenario's effect on one handler's database work; None: none (the handler's usual query)."""
        if self.fault == "slow-query" and (request.method, request.path) == CHECKOUT and self._slow_release_current():
            return self._slow_lookup(request, env)
        if (self.fault == "lock-contention" and request.method == "PATCH" and operation == "UPDATE"
                and table == ORDER_TABLE and request.path.startswith(ORDER_ITEM_PREFIX)):
            return self._locked_update(env)
        return None

    def _slow_lookup(self, request: AppRequest, env: RouteEnv) -> DbRun:
        from kamkmserve_sim.routes import latency

        indexed = self.backend.slow_column_indexed()
        if indexed:
            ms = latency(env.rng, 4, 0.5)
        else:
            load = 1.0 + HEAVY_WORKER_LOAD * self.jobs.heavy_workers()
            ms = round(latency(env.rng, SLOW_QUERY_MEDIAN_MS, 0.25) * load)
        self.backend.note_slow_query(ms, indexed)
        if env.request_metrics:
            env.log.log("info", f"Database operation: SELECT on {ORDER_TABLE}",
                        {"rows": env.rng.randint(0, 5), "operation": "SELECT", "table": ORDER_TABLE, "duration": ms,
                         "database": True})
            env.collector.record_database_operation("SELECT", ORDER_TABLE, ms, True)
        if not indexed and env.rng.random() < SENTRY_TRACE_SHARE:
            # Sentry's tracing flags slow database spans as a "Slow DB Query" issue, the span's SQL as culprit.
            self.errors.capture(title="Slow DB Query", culprit=SLOW_QUERY, release=self.releases.current.version,
                                user=request.forwarded_for or "unknown", now_ms=env.now_ms)
        return DbRun(extra_ms=ms)

    def _locked_update(self, env: RouteEnv) -> DbRun | None:
        message = self.backend.write_blocked()
        self.backend.note_write(message is not None)
        if message is None:
            return None
        error = lock_timeout_error(message)
        ms = LOCK_TIMEOUT_MS + env.rng.randint(3, 40)
        if env.request_metrics:
            env.log.log("error", f"DB UPDATE on {ORDER_TABLE} failed", {"duration": ms})
            env.collector.record_database_operation("UPDATE", ORDER_TABLE, ms, False, error)
        return DbRun(extra_ms=ms, error=error)

    # -- the control plane ----------------------------------------------------------------------------
    def public(self) -> dict[str, object]:
        return {"backend": self.backend.kind, "fault": self.fault, **self.backend.public(),
                "jobs": self.jobs.listing()}


def _memory(clock: Clock, seed: int) -> MemoryBackend:
    return MemoryBackend(clock=clock, rng=random.Random(seed + 3))
