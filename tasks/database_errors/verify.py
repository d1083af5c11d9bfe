"""Recover for the database runbook: no new database failures since the fix, then the load probe.

The app's metric samples carry no timestamps (docs/reference/kamkmserve.md §2.4: raw samples in a ring buffer), so
"since the fix" is read from its logs, which do: every sample counts the failed and slow database operations logged
since the previous one. A stretch with no database line at all is unknown, never quiet.
"""

from __future__ import annotations

from datetime import datetime

from remediation.models import Verification
from remediation.runtime import Providers
from tasks import step
from tasks.common.verify import Reading, verify_since
from tasks.database_errors.identify import parse_db_logs


@step(name="recover: database failures stopped")
async def verify_db_quiet(providers: Providers, *, since: datetime, consecutive: int, interval_s: float,
                          deadline_s: float) -> Verification:
    """Healthy = ``consecutive`` samples in a row, each with database operations logged and none failed or slow."""
    check = (f"no failed or slow database operation logged since the fix, {consecutive} samples "
             f"{interval_s:g}s apart")
    return await verify_since(providers, check=check, since=since, consecutive=consecutive, interval_s=interval_s,
                              deadline_s=deadline_s, read=lambda at: _sample(providers, at), healthy_word="quiet")


async def _sample(providers: Providers, since: datetime) -> Reading:
    """(value, healthy, words): value = failed plus slow operations logged since ``since``."""
    try:
        stats = parse_db_logs(await providers.logs.lines(since=since, limit=5000))
    except Exception as exc:
        return None, False, f"logs unreadable: {exc}"
    if stats.operations + stats.slow == 0:
        return None, False, "no database operation logged: unknown"
    value = float(stats.failures + stats.slow)
    worst = stats.worst()
    return value, value == 0, (f"{stats.failures} failed, {stats.slow} slow of {stats.operations} operations"
                               + (f" (worst: {worst[0].operation} on {worst[0].table})" if worst else ""))


@step(name="recover: load probe")
async def probe_check(providers: Providers, *, requests: int, p95_ms: float, error_pct: float) -> Verification:
    if providers.probe is None:
        return Verification(check="load probe", healthy=False, detail="no load probe configured: unknown")
    return await providers.probe.verify(requests=requests, p95_ms=p95_ms, error_pct=error_pct)
