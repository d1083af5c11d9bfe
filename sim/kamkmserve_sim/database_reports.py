"""The JSON the simulated database's inspector answers with (``/_sim/database/...``), and the index repair it takes.

These shapes are the simulator's HTTP contract, declared here and nowhere else: the remediation's adapter reads them
over HTTP with its own models, so the two are separate statements of one interface and a disagreement shows as a
failing adapter test instead of being impossible by construction. Field names and order are the wire format: the
JSON object keys come out in declaration order.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

#: PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes; longer ones are refused rather than truncated.
MAX_IDENTIFIER_BYTES = 63
#: INDEX_MAX_KEYS in a stock PostgreSQL build.
MAX_INDEX_COLUMNS = 32
#: pg_stat_statements' absence, as the inspector reports it.
PG_STAT_STATEMENTS_MISSING = "pg_stat_statements is not installed in this database"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


def _now() -> datetime:
    return datetime.now(UTC)


class Refused(Exception):
    """The request is well-formed but the database refuses it (terminating the inspector itself, a failed build)."""


class BadIndex(ValueError):
    """CREATE INDEX on a table or column that does not exist."""


class LockHolder(BaseModel):
    pid: int
    state: str | None = None
    query: str = ""
    user: str | None = None
    application: str | None = None
    xact_seconds: float | None = None
    state_seconds: float | None = None


class LockWait(BaseModel):
    blocked_pid: int
    blocked_query: str = ""
    blocked_user: str | None = None
    blocked_application: str | None = None
    waited_seconds: float | None = None
    lock_type: str | None = None
    lock_mode: str | None = None
    relation: str | None = None
    blocking_pids: tuple[int, ...] = ()
    blockers: tuple[LockHolder, ...] = ()


class LockReport(BaseModel):
    available: bool
    reason: str = ""
    at: datetime = Field(default_factory=_now)
    waits: tuple[LockWait, ...] = ()


class SessionInfo(BaseModel):
    pid: int
    state: str
    query: str = ""
    user: str | None = None
    application: str | None = None
    duration_seconds: float
    xact_seconds: float | None = None
    state_seconds: float | None = None
    wait_event_type: str | None = None
    wait_event: str | None = None


class SessionReport(BaseModel):
    available: bool
    reason: str = ""
    at: datetime = Field(default_factory=_now)
    min_seconds: float = 0.0
    sessions: tuple[SessionInfo, ...] = ()


class TableScanStats(BaseModel):
    schema_name: str
    table: str
    seq_scan: int
    seq_tup_read: int
    idx_scan: int
    n_live_tup: int
    flagged: bool
    reason: str


class ScanReport(BaseModel):
    available: bool
    reason: str = ""
    at: datetime = Field(default_factory=_now)
    min_seq_scans: int = 0
    tables: tuple[TableScanStats, ...] = ()


class IndexUsage(BaseModel):
    schema_name: str
    table: str
    index: str
    idx_scan: int
    size_bytes: int
    definition: str


class IndexReport(BaseModel):
    available: bool
    reason: str = ""
    at: datetime = Field(default_factory=_now)
    stats_since: datetime | None = None
    indexes: tuple[IndexUsage, ...] = ()


class Presence(BaseModel):
    available: bool
    reason: str = ""
    at: datetime = Field(default_factory=_now)
    present: bool = False
    valid: bool | None = None
    detail: str = ""


class StatementStats(BaseModel):
    queryid: int | None
    query: str
    calls: int
    total_exec_ms: float
    mean_exec_ms: float
    rows: int


class StatementReport(BaseModel):
    available: bool
    reason: str = ""
    at: datetime = Field(default_factory=_now)
    statements: tuple[StatementStats, ...] = ()


def judge_scan(r: Any, small_table_rows: int) -> TableScanStats:
    """A table whose sequential scans outnumber its index scans is flagged, unless it is too small to matter."""
    seq, read, idx, live = int(r["seq_scan"]), int(r["seq_tup_read"]), int(r["idx_scan"]), int(r["n_live_tup"])
    figures = f"{seq} sequential scans read {read} rows vs {idx} index scans; {live} live rows"
    if live < small_table_rows:
        flagged, why = False, f"{figures}: small table, sequential scans are cheap"
    elif seq <= idx:
        flagged, why = False, f"{figures}: index scans dominate"
    else:
        hint = "no index at all" if not r["index_count"] else "existing indexes are not used by these queries"
        flagged, why = True, f"{figures}: heavy sequential scanning ({hint}); a missing index is likely"
    return TableScanStats(schema_name=r["schemaname"], table=r["relname"], seq_scan=seq, seq_tup_read=read,
                          idx_scan=idx, n_live_tup=live, flagged=flagged, reason=why)


def _identifier(value: str, what: str = "identifier") -> str:
    # Narrow on purpose: only names that can be double-quoted into DDL without any doubt (DDL binds no parameters).
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string")
    if len(value.encode("utf-8")) > MAX_IDENTIFIER_BYTES:
        raise ValueError(f"{what} is longer than {MAX_IDENTIFIER_BYTES} bytes")
    if not _IDENTIFIER.fullmatch(value):
        raise ValueError(f"{what} {value!r} is not a plain identifier (letters, digits, _ and $; no leading digit)")
    return value


def quote_ident(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


class IndexRequest(BaseModel):
    """``POST /_sim/database/indexes``: a ``CREATE INDEX CONCURRENTLY IF NOT EXISTS`` from plain identifiers only.

    The client names the index (as a DBA's DDL does); the limits are PostgreSQL's own (63-byte names, 32 columns)."""

    model_config = ConfigDict(frozen=True, populate_by_name=True)

    table: str
    columns: tuple[str, ...]
    name: str
    schema_name: str = Field(default="public", alias="schema")

    @field_validator("table", "schema_name", "name")
    @classmethod
    def _plain(cls, value: str) -> str:
        return _identifier(value)

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or len(value) > MAX_INDEX_COLUMNS:
            raise ValueError(f"an index takes 1 to {MAX_INDEX_COLUMNS} columns")
        if len(set(value)) != len(value):
            raise ValueError("a column appears twice in the index")
        return tuple(_identifier(column, "column") for column in value)

    @property
    def sql(self) -> str:
        columns = ", ".join(quote_ident(column) for column in self.columns)
        return (f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {quote_ident(self.name)} "
                f"ON {quote_ident(self.schema_name)}.{quote_ident(self.table)} ({columns})")
