"""Contain and remediate for the database runbook: choose the lever from the evidence (pure planning helpers)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from remediation.models import CreateIndexPlan, PauseJobs, TerminateBackend
from remediation.providers.dbqueries import LockHolder, LockReport, ScanReport, SessionReport
from remediation.providers.platform import Job

# Never worth an index: the primary key has one.
_INDEXED_BY_DEFINITION = {"id"}
_COMPARISON = re.compile(
    r'(?:"?(?P<qualifier>[a-z_][\w$]*)"?\s*\.\s*)?"?(?P<column>[a-z_][\w$]*)"?\s*'
    r"(?:=|<>|!=|<=|>=|<|>|\bin\b|\blike\b|\bilike\b|\bis\b|\bbetween\b)",
    re.IGNORECASE,
)
_WHERE = re.compile(r"\bwhere\b(?P<clause>.*?)(?:\border\s+by\b|\bgroup\s+by\b|\blimit\b|\breturning\b|$)",
                    re.IGNORECASE | re.DOTALL)
_KEYWORDS = {"and", "or", "not", "where", "null", "true", "false", "select", "exists"}
_CLAUSES = {"where", "set", "join", "left", "right", "inner", "outer", "on", "order", "group", "limit", "returning",
            "values", "using", "for"}


def pause_jobs_plan(service: str, jobs: list[Job]) -> PauseJobs | None:
    """Pause the heavy pools that run (they load the database); remember their worker counts for the resume."""
    running = {job.name: job.workers for job in jobs if job.heavy and job.workers > 0}
    if not running:
        return None
    return PauseJobs(service=service, previous=running,
                     reason="take the heavy background jobs' load off the database while we investigate")


def terminate_plan(service: str, locks: LockReport, sessions: SessionReport, held_s: float) -> TerminateBackend | None:
    """The session at the head of the lock queue, when its transaction has been open ``held_s`` or longer.

    Only a root blocker qualifies (one that is not itself waiting); one idle in transaction is preferred, then
    the one blocking the most sessions. Nothing is chosen from sessions alone: without waiters there is no
    evidence that terminating anything helps.
    """
    if not locks.available or not locks.waits:
        return None
    waiting = {wait.blocked_pid for wait in locks.waits}
    holders: dict[int, LockHolder] = {b.pid: b for wait in locks.waits for b in wait.blockers}
    open_for = {s.pid: s.xact_seconds for s in sessions.sessions} if sessions.available else {}
    blocked: dict[int, int] = {}
    for wait in locks.waits:
        for pid in wait.blocking_pids:
            blocked[pid] = blocked.get(pid, 0) + 1
    candidates = []
    for pid in locks.blocker_pids():
        holder = holders.get(pid, LockHolder(pid=pid))
        held = holder.xact_seconds if holder.xact_seconds is not None else open_for.get(pid)
        if pid in waiting or held is None or held < held_s:
            continue
        idle = (holder.state or "").startswith("idle in transaction")
        candidates.append((not idle, -blocked.get(pid, 0), pid, holder, held))
    if not candidates:
        return None
    _, _, pid, holder, held = min(candidates, key=lambda c: (c[0], c[1], c[2]))
    who = holder.application or holder.user or "unknown client"
    return TerminateBackend(
        service=service, pid=pid, query=holder.query, application=holder.application,
        blocked_sessions=blocked.get(pid, 0), held_for_s=round(held, 1),
        reason=(f"backend {pid} ({who}, {holder.state or 'state unknown'}) has held its transaction for "
                f"{held:.0f}s and blocks {blocked.get(pid, 0)} session(s); last statement: {holder.query[:160]}"),
    )


def filter_columns(sql: str, table: str) -> list[str]:
    """Columns of ``table`` that ``sql`` filters on in its WHERE clause, in order (empty if it is not about it).

    Handles what ORMs print (``"t"."col" = $1``) and hand-written SQL (``col = 'x'``); a column qualified with
    another table's name is not ``table``'s.
    """
    text = sql.lower()
    name = table.lower()
    reference = re.search(rf'\b(?:from|join|update|into)\s+(?:"?[\w$]+"?\.)?"?{re.escape(name)}"?'
                          r'(?:\s+(?:as\s+)?"?(?P<alias>[a-z_][\w$]*)"?)?(?:\s|$|,)', text)
    if reference is None:
        return []
    mine = {None, name}
    if reference["alias"] and reference["alias"] not in _CLAUSES:
        mine.add(reference["alias"])
    found: list[str] = []
    for where in _WHERE.finditer(text):
        for match in _COMPARISON.finditer(where["clause"]):
            qualifier, column = match["qualifier"], match["column"]
            if qualifier not in mine or column in _KEYWORDS or column in found:
                continue
            found.append(column)
    return found


def index_plan(service: str, scans: ScanReport, queries: Iterable[str]) -> CreateIndexPlan | None:
    """An index on the first column a query filters on, for a table flagged for sequential scans."""
    texts = [q for q in queries if q]
    for table in scans.flagged() if scans.available else []:
        for sql in texts:
            columns = [c for c in filter_columns(sql, table.table) if c not in _INDEXED_BY_DEFINITION]
            if not columns:
                continue
            try:
                return CreateIndexPlan(
                    service=service, table=table.table, schema_name=table.schema_name, columns=(columns[0],),
                    reason=(f"{table.table}: {table.reason}; the slow query filters on {columns[0]}: "
                            f"{sql.strip()[:160]}"))
            except ValueError:
                continue  # not a name we would quote into DDL: look further
    return None
