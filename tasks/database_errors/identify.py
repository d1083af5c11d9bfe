"""Identify for the database runbook: failed and slow database operations, from the app's metrics and logs.

Both sources exist only when kamkmserve's ``db.execute`` wrapper and metrics collector run
(docs/reference/kamkmserve.md §2.3, §3.3: dead code today). So the absence of failure lines proves nothing by itself: a
source that shows no database operation at all is ``unknown``, and only a source that shows operations succeeding can
say ``ok``.
"""

from __future__ import annotations

import re
from datetime import timedelta

from pydantic import BaseModel, ConfigDict

from remediation.models import Finding, FindingStatus
from remediation.providers.dbops import DbOperationStats
from remediation.providers.platform import LogLine
from remediation.runtime import Providers
from tasks import step

# The app's exact messages (docs/reference/kamkmserve.md §3.2/§3.3): the wrapper's error line and the collector's lines.
_WRAPPER_FAILED = re.compile(r"DB (?P<op>[A-Z]+) on (?P<table>\S+) failed")
_FAILED = re.compile(r"Database operation failed: (?P<op>\S+) on (?P<table>\S+)")
_SLOW = re.compile(r"Slow database operation: (?P<op>\S+) on (?P<table>\S+)")
_DONE = re.compile(r"Database operation: (?P<op>\S+) on (?P<table>\S+)")
# What the running app does write about its database today (docs/reference/kamkmserve.md §3.2, "Observed at
# runtime"): every audit insert logs its failure (context.error is the driver's, "Error connecting to database:
# TypeError: fetch failed" when the database is unreachable) or, once it succeeded, its security event. So the
# audit insert is the one database operation whose outcome the real app logs.
AUDIT_TABLE = "kamkmserve_audit_log"
CONNECTION = "(connection)"
_AUDIT_FAILED = "Failed to write audit log"
_AUDIT_WRITTEN = "Security event: Audit: "
_UNREACHABLE = "Error connecting to database"
# No migration creates the audit table (docs/reference/kamkmserve.md §5.1), so on the app as deployed every upload's
# audit write fails
# this way while the database itself is fine: a standing schema gap for the upload runbook's audit_writes finding,
# which no database remedy (terminate, index, rollback) can close. Counted apart, never as a failure.
_TABLE_MISSING = re.compile(r'relation "(?:\w+\.)?kamkmserve_audit_log" does not exist')


class DbLogGroup(BaseModel):
    model_config = ConfigDict(frozen=True)

    table: str
    operation: str
    succeeded: int = 0
    failed: int = 0
    slow: int = 0
    last_error: str | None = None


class DbLogStats(BaseModel):
    """Database lines in a stretch of the app's logs, grouped by (table, operation)."""

    model_config = ConfigDict(frozen=True)

    available: bool
    reason: str = ""
    lines: int = 0
    groups: tuple[DbLogGroup, ...] = ()
    audit_table_missing: int = 0  # audit writes refused only because the table was never created

    @property
    def operations(self) -> int:
        return sum(g.succeeded + g.failed for g in self.groups)

    @property
    def failures(self) -> int:
        return sum(g.failed for g in self.groups)

    @property
    def slow(self) -> int:
        return sum(g.slow for g in self.groups)

    def worst(self) -> list[DbLogGroup]:
        return sorted((g for g in self.groups if g.failed or g.slow),
                      key=lambda g: (-g.failed, -g.slow, g.table, g.operation))


def parse_db_logs(lines: list[LogLine]) -> DbLogStats:
    """Count the app's database lines. One failure prints both ``DB <OP> on <t> failed`` and ``Database operation
    failed: …``; it is counted once (the larger of the two counts per group)."""
    counts: dict[tuple[str, str], dict[str, int]] = {}
    errors: dict[tuple[str, str], str] = {}
    table_missing = 0
    for line in lines:
        written = _audit_or_connection(line)
        if written is not None:
            kind, key, error = written
            if kind == "missing":
                table_missing += 1
                continue
            counts.setdefault(key, {"wrapper": 0, "failed": 0, "slow": 0, "done": 0})[kind] += 1
            if error is not None:
                errors[key] = error
            continue
        for kind, pattern in (("wrapper", _WRAPPER_FAILED), ("failed", _FAILED), ("slow", _SLOW), ("done", _DONE)):
            match = pattern.fullmatch(line.message)
            if match is None:
                continue
            key = (match["table"], match["op"].upper())
            group = counts.setdefault(key, {"wrapper": 0, "failed": 0, "slow": 0, "done": 0})
            group[kind] += 1
            error = (line.context or {}).get("error")
            if kind == "failed" and isinstance(error, str):
                errors[key] = error
            break
    groups = tuple(
        DbLogGroup(table=table, operation=op, succeeded=c["done"], failed=max(c["wrapper"], c["failed"]),
                   slow=c["slow"], last_error=errors.get((table, op)))
        for (table, op), c in sorted(counts.items())
    )
    return DbLogStats(available=True, lines=len(lines), groups=groups, audit_table_missing=table_missing)


def _audit_or_connection(line: LogLine) -> tuple[str, tuple[str, str], str | None] | None:
    """(kind, (table, operation), error) for an audit insert's outcome or an unreachable database, else None."""
    context_error = (line.context or {}).get("error")
    error = context_error if isinstance(context_error, str) else None
    if line.message == _AUDIT_FAILED:
        missing = error is not None and _TABLE_MISSING.search(error) is not None
        return "missing" if missing else "failed", (AUDIT_TABLE, "INSERT"), error
    if line.message.startswith(_AUDIT_WRITTEN):
        return "done", (AUDIT_TABLE, "INSERT"), None
    if _UNREACHABLE in line.message or (error is not None and _UNREACHABLE in error):
        return "failed", (CONNECTION, "CONNECT"), error or line.message
    return None


@step(name="identify: database log lines")
async def read_db_logs(providers: Providers, window_s: float) -> DbLogStats:
    since = providers.clock.now() - timedelta(seconds=window_s)
    try:
        lines = await providers.logs.lines(since=since, limit=5000)
    except Exception as exc:
        return DbLogStats(available=False, reason=f"logs unreadable: {exc}")
    return parse_db_logs(lines)


def log_finding(stats: DbLogStats, min_failures: int, min_slow: int, window_s: float) -> Finding:
    if not stats.available:
        return Finding(check="db_log_errors", status=FindingStatus.UNKNOWN, threshold=min_failures, unit="failures",
                       detail=stats.reason)
    missing = (f"; {stats.audit_table_missing} audit write(s) failed only because {AUDIT_TABLE} does not exist (a "
               "missing migration, not counted)") if stats.audit_table_missing else ""
    if not stats.groups:
        return Finding(check="db_log_errors", status=FindingStatus.UNKNOWN, threshold=min_failures, unit="failures",
                       detail=f"no database operation in {stats.lines} log line(s) of the last {window_s:g}s "
                              f"(kamkmserve's db.execute wrapper logs nothing today){missing}")
    breach = stats.failures >= min_failures or stats.slow >= min_slow
    top = "; ".join(f"{g.operation} on {g.table}: {g.failed} failed, {g.slow} slow"
                    + (f" ({g.last_error})" if g.last_error else "") for g in stats.worst()[:3])
    return Finding(check="db_log_errors", status=FindingStatus.BREACH if breach else FindingStatus.OK,
                   observed=stats.failures, threshold=min_failures, unit="failures",
                   detail=(f"{stats.failures} failed and {stats.slow} slow of {stats.operations} database operations "
                           f"logged in the last {window_s:g}s" + (f"; {top}" if top else "") + missing),
                   evidence={"slow": stats.slow, "operations": stats.operations,
                             "audit_table_missing": stats.audit_table_missing,
                             "groups": [g.model_dump() for g in stats.worst()[:10]]})


def failures_finding(stats: DbOperationStats, min_failures: int) -> Finding:
    if not stats.available:
        return Finding(check="db_operation_failures", status=FindingStatus.UNKNOWN, threshold=min_failures,
                       unit="failures", detail=stats.reason)
    failing = stats.failing()
    top = "; ".join(f"{o.operation} on {o.table}: {o.failures}/{o.count}" for o in failing[:3])
    return Finding(check="db_operation_failures",
                   status=FindingStatus.BREACH if stats.failures >= min_failures else FindingStatus.OK,
                   observed=stats.failures, threshold=min_failures, unit="failures",
                   detail=f"{stats.failures} of the last {stats.samples} db_operation_duration samples failed"
                          + (f"; {top}" if top else ""),
                   evidence={"failing": [o.model_dump() for o in failing[:10]]})


def latency_finding(stats: DbOperationStats, slow_ms: float) -> Finding:
    if not stats.available:
        return Finding(check="db_operation_p95", status=FindingStatus.UNKNOWN, threshold=slow_ms, unit="ms",
                       detail=stats.reason)
    slowest = stats.slowest()[0]
    return Finding(check="db_operation_p95",
                   status=FindingStatus.BREACH if slowest.p95_ms > slow_ms else FindingStatus.OK,
                   observed=slowest.p95_ms, threshold=slow_ms, unit="ms",
                   detail=f"slowest: {slowest.operation} on {slowest.table}, p95 {slowest.p95_ms:g} ms over "
                          f"{slowest.count} operation(s) (the app calls > {slow_ms:g} ms slow)",
                   evidence={"slowest": [o.model_dump() for o in stats.slowest()[:5]]})


@step(name="identify: database operations")
async def sample_db_operations(providers: Providers, window_samples: int, samples: int, interval_s: float,
                               min_failures: int, slow_ms: float) -> tuple[list[Finding], DbOperationStats]:
    """``samples`` readings ``interval_s`` apart; a check is in breach only if every reading breaches it."""
    readings: list[tuple[Finding, Finding]] = []
    stats = DbOperationStats(available=False, reason="not sampled")
    for i in range(samples):
        if i:
            await providers.clock.sleep(interval_s)
        stats = await providers.metrics.db_operations(window_samples)
        readings.append((failures_finding(stats, min_failures), latency_finding(stats, slow_ms)))
    return [_confirmed([r[k] for r in readings]) for k in (0, 1)], stats


def _confirmed(readings: list[Finding]) -> Finding:
    statuses = {f.status for f in readings}
    if FindingStatus.UNKNOWN in statuses:
        return next(f for f in readings if f.status is FindingStatus.UNKNOWN)
    last = readings[-1]
    if statuses == {FindingStatus.BREACH} or len(readings) == 1:
        return last
    return last.model_copy(update={"status": FindingStatus.OK,
                                   "detail": f"{last.detail}; not every one of {len(readings)} readings breached"})


SIGNALS = ("db_operation_failures", "db_operation_p95", "db_log_errors")


def verdict(findings: list[Finding]) -> Finding:
    """Breach if any database signal breaches; unknown if every one is unknown; else ok."""
    signals = [f for f in findings if f.check in SIGNALS]
    breached = [f for f in signals if f.status is FindingStatus.BREACH]
    unknown = [f for f in signals if f.status is FindingStatus.UNKNOWN]
    failures = next((f.observed for f in signals if f.check == "db_log_errors" and f.observed is not None), None)
    if failures is None:
        failures = next((f.observed for f in signals if f.check == "db_operation_failures"), None)
    if breached:
        return Finding(check="database_errors", status=FindingStatus.BREACH, observed=failures, unit="failures",
                       detail="; ".join(f"{f.check}: {f.detail}" for f in breached))
    if signals and len(unknown) == len(signals):
        return Finding(check="database_errors", status=FindingStatus.UNKNOWN, unit="failures",
                       detail="no database signal can be read: " + "; ".join(f.detail for f in unknown))
    return Finding(check="database_errors", status=FindingStatus.OK, observed=failures, unit="failures",
                   detail="database operations succeed and are fast"
                          + (f" (unknown: {', '.join(f.check for f in unknown)})" if unknown else ""))
