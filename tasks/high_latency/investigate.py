"""Investigate and remediate for the high-latency runbook: where the time goes, and what people should fix.

The remediate step of this runbook only *recommends*: an index, a cache or timeout, a release to look at, or
capacity planning. Nothing destructive is done automatically; the database fix belongs to the
database-errors runbook, which asks for approval before it touches the database.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict

from remediation.models import Evidence
from remediation.providers.dbops import DbOperationStats
from remediation.providers.metrics import RequestStats
from remediation.providers.platform import Release
from remediation.runtime import Providers
from tasks import step

SLOW_DB_MS = 500.0  # the app's own "Slow database operation" threshold (docs/reference/kamkmserve.md §11)


class Recommendation(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["index", "database", "release", "hot_path", "capacity"]
    summary: str


@step(name="investigate: hot endpoints")
async def hot_endpoints(stats: RequestStats, p95_ms: float) -> Evidence:
    if not stats.available:
        return Evidence(source="endpoints", summary=stats.reason, available=False)
    hot = stats.hottest_routes(3)
    if not hot:
        return Evidence(source="endpoints", summary="no route has enough duration samples", available=False)
    above = sum(1 for r in hot if (r.p95_ms or 0.0) > p95_ms)
    top = ", ".join(f"{r.method} {r.path} p95 {r.p95_ms:g} ms (avg {r.avg_ms:g}, n={r.latency_samples})"
                    for r in hot[:5])
    return Evidence(source="endpoints", summary=f"{above} of {len(hot)} routes above {p95_ms:g} ms; slowest: {top}",
                    items=tuple(r.model_dump() for r in hot[:10]))


@step(name="investigate: database operation timings")
async def db_timings(providers: Providers, window_samples: int) -> tuple[Evidence, DbOperationStats]:
    try:
        db = await providers.metrics.db_operations(window_samples)
    except Exception as exc:
        db = DbOperationStats(available=False, reason=f"db_operation_duration unreadable: {exc}")
    if not db.available:
        return Evidence(source="db_operations", summary=f"unknown: {db.reason}", available=False), db
    slow = db.slowest()
    top = ", ".join(f"{o.operation} {o.table} p95 {o.p95_ms:g} ms (n={o.count})" for o in slow[:3])
    return (Evidence(source="db_operations", summary=f"{db.samples} samples; slowest: {top}",
                     items=tuple({**o.model_dump(), "failure_pct": o.failure_pct} for o in slow[:10])), db)


@step(name="investigate: external dependency calls")
async def dependency_calls() -> Evidence:
    """kamkmserve times none of its outbound calls: the gap is stated, not guessed around."""
    return Evidence(source="dependencies", available=False,
                    summary="unavailable: kamkmserve records no timing of its calls to Neon, Clerk, Resend or "
                            "Upstash (no metric, no log line); a slow dependency shows only as slow routes")


def recommend(stats: RequestStats, db: DbOperationStats, releases: list[Release], now: datetime,
              lookback_s: float, p95_ms: float) -> Recommendation:
    """The fix the evidence points to, for people. The first rule that fits wins: the database, a fresh
    release, one hot path, else pure load."""
    if db.available:
        slow = [o for o in db.slowest() if o.p95_ms > SLOW_DB_MS]
        select = next((o for o in slow if o.operation == "SELECT"), None)
        if select is not None:
            return Recommendation(kind="index", summary=(
                f"index: SELECT on {select.table} has p95 {select.p95_ms:g} ms (> {SLOW_DB_MS:g} ms, the app's "
                f"slow-query line): look for a missing index or a sequential scan on {select.table}; run the "
                "database-errors runbook, which inspects scans and statements and proposes CREATE INDEX "
                "CONCURRENTLY for approval"))
        if slow:
            worst = slow[0]
            return Recommendation(kind="database", summary=(
                f"database: {worst.operation} on {worst.table} has p95 {worst.p95_ms:g} ms: look for lock "
                "contention or write load; run the database-errors runbook"))
    current = next((r for r in releases if r.state == "current"), None)
    if current is not None and current.promoted_at and current.promoted_at >= now - timedelta(seconds=lookback_s):
        age = (now - current.promoted_at).total_seconds()
        return Recommendation(kind="release", summary=(
            f"release: {current.version} was promoted {age:.0f}s before the spike: compare what it changed on the "
            "slow paths; if latency follows it, roll it back (a human decides)"))
    timed = stats.hottest_routes(3)
    slow_routes = [r for r in timed if (r.p95_ms or 0.0) > p95_ms]
    db_note = "normal database timings" if db.available else "database timings unknown"
    if slow_routes and len(slow_routes) <= max(1, len(timed) // 4):
        hot = slow_routes[0]
        return Recommendation(kind="hot_path", summary=(
            f"hot path: {hot.method} {hot.path} p95 {hot.p95_ms:g} ms while most routes are under {p95_ms:g} ms "
            f"({db_note}): cache its response or put a timeout on the slow call it makes"))
    return Recommendation(kind="capacity", summary=(
        f"capacity: {len(slow_routes)} of {len(timed)} routes slowed at once with {db_note} and no recent "
        "release: pure load. Keep the service scaled while the load lasts and plan capacity (replica floor, "
        "autoscaling target); kamkmserve on Vercel has no scale knob today"))
