"""Investigate for the database runbook: what the database inspector sees, each reading on its own.

The inspector's reads never raise; an unreadable one (or no inspector at all) is Evidence with
``available=False`` and the reason, and the report it came from, so the remediate step can tell "no blocker"
from "could not look".
"""

from __future__ import annotations

from remediation.models import Evidence
from remediation.providers.dbqueries import IndexReport, LockReport, ScanReport, SessionReport, StatementReport
from remediation.runtime import Providers
from tasks import step

NO_INSPECTOR = ("no database inspector: set REMEDIATE_APP_DATABASE_URL to the application's PostgreSQL "
                "(a read-only role is enough to look)")


@step(name="investigate: blocking locks")
async def lock_evidence(providers: Providers) -> tuple[Evidence, LockReport]:
    if providers.database is None:
        return Evidence(source="locks", summary=NO_INSPECTOR, available=False), LockReport(available=False,
                                                                                            reason=NO_INSPECTOR)
    report = await providers.database.blocking_locks()
    if not report.available:
        return Evidence(source="locks", summary=report.reason, available=False), report
    if not report.waits:
        return Evidence(source="locks", summary="no session waits on a lock"), report
    heads = report.blocker_pids()
    holder = next((b for w in report.waits for b in w.blockers if b.pid == heads[0]), None)
    head = (f"head blocker pid {heads[0]}" + (f" ({holder.application or holder.user}, {holder.state}, transaction "
                                              f"open {holder.xact_seconds or 0:.0f}s): {holder.query[:120]}"
                                              if holder else ""))
    longest = max(w.waited_seconds or 0 for w in report.waits)
    items = tuple({"blocked_pid": w.blocked_pid, "blocked_query": w.blocked_query[:300],
                   "waited_s": w.waited_seconds, "lock": f"{w.lock_type}/{w.lock_mode}", "relation": w.relation,
                   "blocking_pids": list(w.blocking_pids),
                   "blockers": [{"pid": b.pid, "state": b.state, "application": b.application,
                                 "xact_s": b.xact_seconds, "query": b.query[:300]} for b in w.blockers]}
                  for w in report.waits[:20])
    return Evidence(source="locks", summary=f"{len(report.waits)} session(s) wait on locks (longest {longest:.1f}s); "
                                            f"{head}", items=items), report


@step(name="investigate: long-running sessions")
async def session_evidence(providers: Providers, min_seconds: float) -> tuple[Evidence, SessionReport]:
    if providers.database is None:
        return (Evidence(source="sessions", summary=NO_INSPECTOR, available=False),
                SessionReport(available=False, reason=NO_INSPECTOR, min_seconds=min_seconds))
    report = await providers.database.long_running(min_seconds)
    if not report.available:
        return Evidence(source="sessions", summary=report.reason, available=False), report
    idle = [s for s in report.sessions if s.idle_in_transaction]
    summary = (f"{len(report.sessions)} session(s) running or in a transaction for {min_seconds:g}s or more, "
               f"{len(idle)} idle in transaction")
    if report.sessions:
        top = report.sessions[0]
        summary += f"; longest: pid {top.pid} ({top.application}, {top.state}, {top.duration_seconds:.0f}s)"
    items = tuple({"pid": s.pid, "state": s.state, "application": s.application, "user": s.user,
                   "duration_s": round(s.duration_seconds, 1), "wait": f"{s.wait_event_type}/{s.wait_event}",
                   "query": s.query[:300]} for s in report.sessions[:20])
    return Evidence(source="sessions", summary=summary, items=items), report


@step(name="investigate: sequential scans")
async def scan_evidence(providers: Providers, min_seq_scans: int) -> tuple[Evidence, ScanReport]:
    if providers.database is None:
        return (Evidence(source="scans", summary=NO_INSPECTOR, available=False),
                ScanReport(available=False, reason=NO_INSPECTOR, min_seq_scans=min_seq_scans))
    report = await providers.database.scan_stats(min_seq_scans)
    if not report.available:
        return Evidence(source="scans", summary=report.reason, available=False), report
    flagged = report.flagged()
    summary = (f"{len(flagged)} table(s) flagged for sequential scans: "
               + "; ".join(f"{t.table} ({t.reason})" for t in flagged[:3])) if flagged else (
        f"no table with {min_seq_scans}+ sequential scans needs an index")
    items = tuple(t.model_dump() for t in report.tables[:20])
    return Evidence(source="scans", summary=summary, items=items), report


@step(name="investigate: unused indexes")
async def unused_index_evidence(providers: Providers) -> Evidence:
    if providers.database is None:
        return Evidence(source="indexes", summary=NO_INSPECTOR, available=False)
    report: IndexReport = await providers.database.unused_indexes()
    if not report.available:
        return Evidence(source="indexes", summary=report.reason, available=False)
    since = f" since {report.stats_since:%Y-%m-%d %H:%M}Z" if report.stats_since else ""
    summary = (f"{len(report.indexes)} index(es) never scanned{since}"
               + (": " + ", ".join(f"{i.index} on {i.table} ({i.size_bytes // 1024} kB)" for i in report.indexes[:3])
                  if report.indexes else ""))
    return Evidence(source="indexes", summary=summary, items=tuple(i.model_dump() for i in report.indexes[:20]))


@step(name="investigate: top statements")
async def statement_evidence(providers: Providers, limit: int = 10) -> tuple[Evidence, StatementReport]:
    if providers.database is None:
        return (Evidence(source="statements", summary=NO_INSPECTOR, available=False),
                StatementReport(available=False, reason=NO_INSPECTOR))
    report = await providers.database.top_statements(limit)
    if not report.available:
        # Typically pg_stat_statements is missing: say so plainly, it is a finding for the postmortem too.
        return Evidence(source="statements", summary=report.reason, available=False), report
    top = report.statements[0] if report.statements else None
    summary = (f"top by total time: {top.calls} calls, mean {top.mean_exec_ms:.1f} ms: {top.query[:160]}"
               if top else "pg_stat_statements has no statements yet")
    items = tuple(s.model_dump() for s in report.statements)
    return Evidence(source="statements", summary=summary, items=items), report
