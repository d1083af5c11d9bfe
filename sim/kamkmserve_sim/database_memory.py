"""The simulated database in memory: the facts a PostgreSQL inspector would read, without a PostgreSQL.

``make demo`` on a fresh machine runs on this backend. It answers with the same reports as the PostgreSQL backend
(``database_reports``) and accepts the same two repairs with PostgreSQL's semantics: terminating an unknown pid is
``False``, the inspector's own pid is refused, creating an index that exists already changes nothing. Table sizes
are production-like (a million orders); scan counters count the queries the simulated app runs since the instance's
statistics were reset at boot.
"""

from __future__ import annotations

import hashlib
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kamkmserve_sim.clock import Clock
from kamkmserve_sim.database_reports import (
    PG_STAT_STATEMENTS_MISSING,
    BadIndex,
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
)
from kamkmserve_sim.database_schema import (
    APP_NAME,
    COLUMNS,
    EXPORT_UPDATE,
    INSERT_ORDER,
    JOB_APP_PREFIX,
    LOCK_TIMEOUT_MESSAGE,
    LOCK_TIMEOUT_MS,
    ORDER_TABLE,
    SLOW_COLUMN,
    SLOW_QUERY,
    STATUS_UPDATE,
)

SMALL_TABLE_ROWS = 1000  # smaller tables are cheap to scan: their sequential scans are never flagged


@dataclass
class TableStats:
    n_live_tup: int
    seq_scan: int
    idx_scan: int
    seq_tup_read: int = 0

    def __post_init__(self) -> None:
        self.seq_tup_read = self.seq_tup_read or self.seq_scan * self.n_live_tup


@dataclass
class Index:
    table: str
    columns: tuple[str, ...]
    definition: str
    size_bytes: int
    idx_scan: int = 0
    enforces: bool = False  # primary key / unique: never reported as unused


@dataclass
class Session:
    pid: int
    state: str
    query: str
    user: str
    application: str
    xact_start_ms: int
    state_change_ms: int


@dataclass
class Statement:
    calls: int
    total_ms: float
    rows: int


@dataclass
class _Wait:
    pid: int
    start_ms: int


@dataclass
class MemoryBackend:
    clock: Clock
    rng: random.Random
    kind: str = "memory"
    booted_ms: int = 0
    inspector_pid: int = 0
    blocker: Session | None = None
    statements_enabled: bool = False
    tables: dict[str, TableStats] = field(default_factory=dict)
    indexes: dict[str, Index] = field(default_factory=dict)
    statements: dict[str, Statement] = field(default_factory=dict)
    _waits: deque[_Wait] = field(default_factory=lambda: deque(maxlen=200))

    def __post_init__(self) -> None:
        self.booted_ms = self.clock.now_ms()
        self.inspector_pid = self._pid()
        self.tables = {
            "kamkmserve_order": TableStats(n_live_tup=1_240_000, seq_scan=2, idx_scan=6),
            "kamkmserve_order_line_item": TableStats(n_live_tup=2_910_000, seq_scan=0, idx_scan=120),
            "kamkmserve_user": TableStats(n_live_tup=48_300, seq_scan=1, idx_scan=310),
            "kamkmserve_cart_item": TableStats(n_live_tup=22_400, seq_scan=0, idx_scan=95),
            "kamkmserve_service": TableStats(n_live_tup=38, seq_scan=880, idx_scan=12),  # small: scans are cheap
        }
        self.indexes = {
            f"{table}_pkey": Index(table, ("id",),
                                   f"CREATE UNIQUE INDEX {table}_pkey ON public.{table} USING btree (id)",
                                   size_bytes=stats.n_live_tup * 40, enforces=True)
            for table, stats in self.tables.items()
        }
        self.indexes["cart_item_created_at_idx"] = Index(
            "kamkmserve_cart_item", ("created_at",),
            "CREATE INDEX cart_item_created_at_idx ON public.kamkmserve_cart_item USING btree (created_at)",
            size_bytes=524_288)
        self.statements = {
            INSERT_ORDER: Statement(calls=1830, total_ms=5124.0, rows=1830),
            STATUS_UPDATE: Statement(calls=212, total_ms=424.0, rows=212),
        }

    def _pid(self) -> int:
        return self.rng.randrange(20_000, 65_000)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.now_ms() / 1000, UTC)

    # -- what the scenarios do to it ------------------------------------------------------------------
    def prepare(self) -> None:
        """Nothing to build: the facts exist from the start."""

    def start_slow_query(self, active: Callable[[], bool]) -> None:
        # Neon preloads pg_stat_statements; the scenario's database has it, so its top statements are readable.
        self.statements_enabled = True

    def start_blocker(self, job: str) -> None:
        now = self.clock.now_ms()
        self.blocker = Session(pid=self._pid(), state="idle in transaction", query=EXPORT_UPDATE,
                               user="kamkmserve_jobs", application=f"{JOB_APP_PREFIX}{job}",
                               xact_start_ms=now, state_change_ms=now + 180)

    def slow_column_indexed(self) -> bool:
        return any(i.table == ORDER_TABLE and i.columns[0] == SLOW_COLUMN for i in self.indexes.values())

    def note_slow_query(self, duration_ms: int, indexed: bool) -> None:
        order = self.tables[ORDER_TABLE]
        if indexed:
            order.idx_scan += 1
            for index in self.indexes.values():
                if index.table == ORDER_TABLE and index.columns[0] == SLOW_COLUMN:
                    index.idx_scan += 1
                    break
        else:
            order.seq_scan += 1
            order.seq_tup_read += order.n_live_tup
        stats = self.statements.setdefault(SLOW_QUERY, Statement(calls=0, total_ms=0.0, rows=0))
        stats.calls += 1
        stats.total_ms += duration_ms
        stats.rows += 5

    def write_blocked(self) -> str | None:
        return LOCK_TIMEOUT_MESSAGE if self.blocker is not None else None

    def note_write(self, blocked: bool) -> None:
        if blocked:
            self._waits.append(_Wait(pid=self._pid(), start_ms=self.clock.now_ms()))
        else:
            self.tables[ORDER_TABLE].idx_scan += 1  # by primary key
            self.indexes[f"{ORDER_TABLE}_pkey"].idx_scan += 1

    def close(self) -> None:
        """Nothing held: no connections, no threads."""

    # -- what an inspector reads ------------------------------------------------------------------------
    def _waiting(self) -> list[_Wait]:
        now = self.clock.now_ms()
        return [w for w in self._waits if now - w.start_ms < LOCK_TIMEOUT_MS and self.blocker is not None]

    def _holder(self, session: Session) -> LockHolder:
        now = self.clock.now_ms()
        return LockHolder(pid=session.pid, state=session.state, query=session.query, user=session.user,
                          application=session.application, xact_seconds=(now - session.xact_start_ms) / 1000,
                          state_seconds=max(0, now - session.state_change_ms) / 1000)

    async def blocking_locks(self) -> LockReport:
        now = self.clock.now_ms()
        waits = []
        if self.blocker is not None:
            holder = self._holder(self.blocker)
            waits = [
                LockWait(blocked_pid=w.pid, blocked_query=STATUS_UPDATE, blocked_user="kamkmserve_app",
                         blocked_application=APP_NAME, waited_seconds=(now - w.start_ms) / 1000,
                         lock_type="transactionid", lock_mode="ShareLock", relation=None,
                         blocking_pids=(holder.pid,), blockers=(holder,))
                for w in sorted(self._waiting(), key=lambda w: w.start_ms)
            ]
        return LockReport(available=True, at=self._now(), waits=tuple(waits))

    async def long_running(self, min_seconds: float) -> SessionReport:
        now = self.clock.now_ms()
        sessions: list[SessionInfo] = []
        if self.blocker is not None:
            b = self.blocker
            sessions.append(SessionInfo(
                pid=b.pid, state=b.state, query=b.query, user=b.user, application=b.application,
                duration_seconds=(now - b.xact_start_ms) / 1000, xact_seconds=(now - b.xact_start_ms) / 1000,
                state_seconds=max(0, now - b.state_change_ms) / 1000, wait_event_type="Client",
                wait_event="ClientRead"))
        for w in self._waiting():
            waited = (now - w.start_ms) / 1000
            sessions.append(SessionInfo(pid=w.pid, state="active", query=STATUS_UPDATE, user="kamkmserve_app",
                                        application=APP_NAME, duration_seconds=waited, xact_seconds=waited,
                                        state_seconds=waited, wait_event_type="Lock", wait_event="transactionid"))
        chosen = sorted((s for s in sessions if s.duration_seconds >= min_seconds),
                        key=lambda s: (-s.duration_seconds, s.pid))
        return SessionReport(available=True, at=self._now(), min_seconds=min_seconds, sessions=tuple(chosen))

    async def scan_stats(self, min_seq_scans: int) -> ScanReport:
        rows: list[dict[str, Any]] = [
            {"schemaname": "public", "relname": name, "seq_scan": t.seq_scan, "seq_tup_read": t.seq_tup_read,
             "idx_scan": t.idx_scan, "n_live_tup": t.n_live_tup,
             "index_count": sum(1 for i in self.indexes.values() if i.table == name)}
            for name, t in self.tables.items() if t.seq_scan >= min_seq_scans
        ]
        rows.sort(key=lambda r: (-int(r["seq_tup_read"]), -int(r["seq_scan"]), str(r["relname"])))
        return ScanReport(available=True, at=self._now(), min_seq_scans=min_seq_scans,
                          tables=tuple(judge_scan(r, SMALL_TABLE_ROWS) for r in rows))

    async def unused_indexes(self) -> IndexReport:
        unused = sorted(((name, i) for name, i in self.indexes.items() if not i.idx_scan and not i.enforces),
                        key=lambda item: (-item[1].size_bytes, item[1].table, item[0]))
        since = datetime.fromtimestamp(self.booted_ms / 1000, UTC)
        return IndexReport(available=True, at=self._now(), stats_since=since,
                           indexes=tuple(IndexUsage(schema_name="public", table=i.table, index=name, idx_scan=0,
                                                    size_bytes=i.size_bytes, definition=i.definition)
                                         for name, i in unused))

    async def top_statements(self, limit: int) -> StatementReport:
        if not self.statements_enabled:
            return StatementReport(available=False, at=self._now(), reason=PG_STAT_STATEMENTS_MISSING)
        ranked = sorted(self.statements.items(), key=lambda item: -item[1].total_ms)[:limit]
        return StatementReport(available=True, at=self._now(), statements=tuple(
            StatementStats(queryid=_queryid(query), query=query, calls=s.calls, total_exec_ms=round(s.total_ms, 3),
                           mean_exec_ms=round(s.total_ms / s.calls, 3) if s.calls else 0.0, rows=s.rows)
            for query, s in ranked))

    async def backend_present(self, pid: int) -> Presence:
        if pid == self.inspector_pid:
            return Presence(available=True, at=self._now(), present=True, detail="active")
        if self.blocker is not None and pid == self.blocker.pid:
            return Presence(available=True, at=self._now(), present=True, detail=self.blocker.state)
        waiting = any(wait.pid == pid for wait in self._waits)
        return Presence(available=True, at=self._now(), present=waiting, detail="active" if waiting else "")

    async def index_present(self, schema_name: str, name: str) -> Presence:
        # Built whole or not at all here: a memory index is never left invalid.
        present = schema_name == "public" and name in self.indexes
        return Presence(available=True, at=self._now(), present=present, valid=True if present else None)

    # -- the two repairs ----------------------------------------------------------------------------------
    async def terminate_backend(self, pid: int) -> bool:
        if pid == self.inspector_pid:
            raise Refused(f"terminate_backend({pid}): refusing to terminate the inspector itself")
        if self.blocker is not None and pid == self.blocker.pid:
            self.blocker = None  # its transaction rolls back: every lock it held is released
            self._waits.clear()
            return True
        for wait in list(self._waits):
            if wait.pid == pid:
                self._waits.remove(wait)
                return True
        return False

    async def create_index_concurrently(self, statement: IndexRequest) -> bool:
        """Returns whether an index was built (False: one of that name exists, IF NOT EXISTS)."""
        if statement.name in self.indexes:
            return False
        columns = COLUMNS.get(statement.table) if statement.schema_name == "public" else None
        if columns is None or statement.table not in self.tables:
            raise BadIndex(f'relation "{statement.schema_name}.{statement.table}" does not exist')
        for column in statement.columns:
            if column not in columns:
                raise BadIndex(f'column "{column}" does not exist')
        cols = ", ".join(statement.columns)
        self.indexes[statement.name] = Index(
            statement.table, statement.columns,
            f"CREATE INDEX {statement.name} ON {statement.schema_name}.{statement.table} USING btree ({cols})",
            size_bytes=self.tables[statement.table].n_live_tup * 24)
        return True

    def public(self) -> dict[str, object]:
        return {"inspector_pid": self.inspector_pid,
                "blocker": self._holder(self.blocker).model_dump() if self.blocker is not None else None,
                "waiting": len(self._waiting()),
                "slow_column_indexed": self.slow_column_indexed(),
                "indexes": sorted(self.indexes),
                "pg_stat_statements": self.statements_enabled}


def _queryid(query: str) -> int:
    return int.from_bytes(hashlib.sha1(query.encode()).digest()[:8], "big", signed=True)
