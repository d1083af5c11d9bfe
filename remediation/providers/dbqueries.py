"""SQL, identifier quoting and reading models for the PostgreSQL inspector (``remediation.providers.database``).

Every query here takes its values as bound parameters; the only SQL ever assembled from strings is
``CREATE INDEX CONCURRENTLY`` (DDL cannot bind identifiers), and that goes through :func:`quote_ident`
after :func:`validate_identifier` has accepted the name.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from remediation.models import utcnow
from remediation.sqlindex import (  # noqa: F401  (re-exported: the queries' identifier rules)
    MAX_IDENTIFIER_BYTES,
    MAX_INDEX_COLUMNS,
    quote_ident,
    validate_identifier,
)

APP_NAME = "remediation-inspector"

# Sessions waiting on a heavyweight lock and who blocks them (pg_blocking_pids). One row per waiter.
BLOCKED_SESSIONS = """
SELECT w.pid AS blocked_pid,
       w.query AS blocked_query,
       w.usename AS blocked_user,
       w.application_name AS blocked_application,
       EXTRACT(EPOCH FROM (clock_timestamp() - COALESCE(l.waitstart, w.state_change))) AS waited_s,
       l.locktype AS lock_type,
       l.mode AS lock_mode,
       l.relation AS relation,
       pg_blocking_pids(w.pid) AS blocking_pids
FROM pg_stat_activity w
LEFT JOIN LATERAL (
    SELECT pl.locktype, pl.mode, pl.waitstart,
           CASE WHEN pl.relation IS NOT NULL THEN pl.relation::regclass::text END AS relation
    FROM pg_locks pl
    WHERE pl.pid = w.pid AND NOT pl.granted
    LIMIT 1
) l ON true
WHERE w.datname = current_database()
  AND w.pid <> pg_backend_pid()
  AND w.wait_event_type = 'Lock'
  AND cardinality(pg_blocking_pids(w.pid)) > 0
ORDER BY waited_s DESC NULLS LAST, w.pid
"""

SESSIONS_BY_PID = """
SELECT pid, state, query, usename, application_name,
       EXTRACT(EPOCH FROM (clock_timestamp() - xact_start)) AS xact_s,
       EXTRACT(EPOCH FROM (clock_timestamp() - state_change)) AS state_s
FROM pg_stat_activity
WHERE pid = ANY(:pids)
"""

# Active queries running for at least :min_seconds, and sessions idle inside a transaction that has been
# open that long (they hold locks and snapshots). The inspector's own sessions are left out.
LONG_RUNNING = """
SELECT * FROM (
    SELECT pid, state, query, usename, application_name, wait_event_type, wait_event,
           EXTRACT(EPOCH FROM (clock_timestamp() - xact_start)) AS xact_s,
           EXTRACT(EPOCH FROM (clock_timestamp() - state_change)) AS state_s,
           CASE WHEN state = 'active' THEN EXTRACT(EPOCH FROM (clock_timestamp() - query_start))
                ELSE EXTRACT(EPOCH FROM (clock_timestamp() - xact_start)) END AS duration_s
    FROM pg_stat_activity
    WHERE datname = current_database()
      AND pid <> pg_backend_pid()
      AND backend_type = 'client backend'
      AND COALESCE(application_name, '') <> :app
      AND state IN ('active', 'idle in transaction', 'idle in transaction (aborted)')
) s
WHERE duration_s >= :min_seconds
ORDER BY duration_s DESC, pid
"""

SCAN_STATS = """
SELECT schemaname, relname, seq_scan, seq_tup_read, COALESCE(idx_scan, 0) AS idx_scan, n_live_tup,
       (SELECT count(*) FROM pg_index i WHERE i.indrelid = t.relid) AS index_count
FROM pg_stat_user_tables t
WHERE seq_scan >= :min_seq_scans
ORDER BY seq_tup_read DESC, seq_scan DESC, schemaname, relname
LIMIT :limit
"""

# Never-scanned indexes that enforce nothing (not unique/primary, backing no constraint) and are valid.
UNUSED_INDEXES = """
SELECT s.schemaname, s.relname, s.indexrelname, s.idx_scan,
       pg_relation_size(s.indexrelid) AS size_bytes,
       pg_get_indexdef(s.indexrelid) AS definition
FROM pg_stat_user_indexes s
JOIN pg_index i ON i.indexrelid = s.indexrelid
WHERE s.idx_scan = 0
  AND NOT i.indisunique AND NOT i.indisprimary AND i.indisvalid
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = s.indexrelid)
ORDER BY pg_relation_size(s.indexrelid) DESC, s.schemaname, s.relname, s.indexrelname
"""

STATS_SINCE = "SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()"

EXTENSION_SCHEMA = """
SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = 'pg_stat_statements'
"""


def top_statements_sql(schema: str) -> str:
    """pg_stat_statements lives in whatever schema it was created in; quote that name from the catalog."""
    return f"""
SELECT queryid, query, calls, total_exec_time, mean_exec_time, rows
FROM {quote_ident(schema)}.pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY total_exec_time DESC
LIMIT :limit
"""


# One backend by pid, whatever its state: after pg_terminate_backend it is gone when the repair worked.
BACKEND_STATE = "SELECT state FROM pg_stat_activity WHERE pid = :pid"

INDEX_VALIDITY = """
SELECT i.indisvalid
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = :schema AND c.relname = :name
"""


# -- the shapes of the answers (re-exported by remediation.providers.database) ------------------------


class LockHolder(BaseModel):
    model_config = ConfigDict(frozen=True)

    pid: int
    state: str | None = None  # e.g. "idle in transaction"
    query: str = ""  # for an idle session, the last statement it ran
    user: str | None = None
    application: str | None = None
    xact_seconds: float | None = None
    state_seconds: float | None = None


class LockWait(BaseModel):
    """One session waiting on a lock, and the sessions (``blockers``) it waits for."""

    model_config = ConfigDict(frozen=True)

    blocked_pid: int
    blocked_query: str = ""
    blocked_user: str | None = None
    blocked_application: str | None = None
    waited_seconds: float | None = None
    lock_type: str | None = None  # pg_locks.locktype: relation, transactionid, tuple, advisory...
    lock_mode: str | None = None
    relation: str | None = None
    blocking_pids: tuple[int, ...] = ()
    blockers: tuple[LockHolder, ...] = ()


class LockReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    available: bool
    reason: str = ""
    at: datetime = Field(default_factory=utcnow)
    waits: tuple[LockWait, ...] = ()

    def blocker_pids(self) -> list[int]:
        """Every blocking pid, most frequent first (the head of a lock queue blocks the most)."""
        counts: dict[int, int] = {}
        for wait in self.waits:
            for pid in wait.blocking_pids:
                counts[pid] = counts.get(pid, 0) + 1
        return sorted(counts, key=lambda pid: (-counts[pid], pid))


class SessionInfo(BaseModel):
    model_config = ConfigDict(frozen=True)

    pid: int
    state: str
    query: str = ""
    user: str | None = None
    application: str | None = None
    duration_seconds: float  # active: since the query started; idle in transaction: since the xact began
    xact_seconds: float | None = None
    state_seconds: float | None = None
    wait_event_type: str | None = None
    wait_event: str | None = None

    @property
    def idle_in_transaction(self) -> bool:
        return self.state.startswith("idle in transaction")


class SessionReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    available: bool
    reason: str = ""
    at: datetime = Field(default_factory=utcnow)
    min_seconds: float = 0.0
    sessions: tuple[SessionInfo, ...] = ()


class TableScanStats(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_name: str
    table: str
    seq_scan: int
    seq_tup_read: int
    idx_scan: int
    n_live_tup: int
    flagged: bool
    reason: str


class ScanReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    available: bool
    reason: str = ""
    at: datetime = Field(default_factory=utcnow)
    min_seq_scans: int = 0
    tables: tuple[TableScanStats, ...] = ()

    def flagged(self) -> list[TableScanStats]:
        return [t for t in self.tables if t.flagged]


class IndexUsage(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_name: str
    table: str
    index: str
    idx_scan: int
    size_bytes: int
    definition: str


class IndexReport(BaseModel):
    """Indexes never scanned since ``stats_since`` (statistics reset); unique/constraint indexes excluded."""

    model_config = ConfigDict(frozen=True)

    available: bool
    reason: str = ""
    at: datetime = Field(default_factory=utcnow)
    stats_since: datetime | None = None
    indexes: tuple[IndexUsage, ...] = ()


class Presence(BaseModel):
    """Whether one database object is there now: a backend by pid, an index by name (how a repair whose answer was
    lost is read back). Reads never raise: an unreadable database is ``available=False`` with the reason."""

    model_config = ConfigDict(frozen=True)

    available: bool
    reason: str = ""
    at: datetime = Field(default_factory=utcnow)
    present: bool = False
    valid: bool | None = None  # an index's pg_index.indisvalid: a cancelled concurrent build leaves it false
    detail: str = ""  # a backend's state ("active", "idle in transaction", ...)


class StatementStats(BaseModel):
    model_config = ConfigDict(frozen=True)

    queryid: int | None
    query: str
    calls: int
    total_exec_ms: float
    mean_exec_ms: float
    rows: int


class StatementReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    available: bool
    reason: str = ""
    at: datetime = Field(default_factory=utcnow)
    statements: tuple[StatementStats, ...] = ()


def judge_scan(r: Any, small_table_rows: int) -> TableScanStats:
    """Flag a table whose sequential scans outnumber index scans, unless it is too small to matter."""
    seq, read, idx, live = int(r["seq_scan"]), int(r["seq_tup_read"]), int(r["idx_scan"]), int(r["n_live_tup"])
    figures = f"{seq} sequential scans read {read} rows vs {idx} index scans; {live} live rows"
    if live < small_table_rows:
        flagged, why = False, f"{figures}: small table, sequential scans are cheap"
    elif seq <= idx:
        flagged, why = False, f"{figures}: index scans dominate"
    else:
        hint = "no index at all" if not r["index_count"] else "existing indexes are not used by these queries"
        flagged, why = True, f"{figures}: heavy sequential scanning ({hint}); a missing index is likely"
    return TableScanStats(
        schema_name=r["schemaname"], table=r["relname"], seq_scan=seq, seq_tup_read=read, idx_scan=idx,
        n_live_tup=live, flagged=flagged, reason=why,
    )
