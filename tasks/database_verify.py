"""Recover for the database runbook: no new database failures since the fix, then the load probe.

The app's metric samples carry no timestamps (reference §2.4: raw samples in a ring buffer), so "since the
fix" is read from its logs, which do: every sample counts the failed and slow database operations logged since
the previous one. A stretch with no database line at all is unknown, never quiet.
"""

from __future__ import annotations

from datetime import datetime

from remediation.models import Sample, Verification
from remediation.runtime import Providers
from tasks import step
from tasks.database_detect import parse_db_logs


@step(name="recover: database failures stopped")
async def verify_db_quiet(providers: Providers, *, since: datetime, consecutive: int, interval_s: float,
                          deadline_s: float) -> Verification:
    """Healthy = ``consecutive`` samples in a row, each with database operations logged and none failed or slow."""
    clock = providers.clock
    started = clock.monotonic()
    check = (f"no failed or slow database operation logged since the fix, {consecutive} samples "
             f"{interval_s:g}s apart")
    samples: list[Sample] = []
    checkpoint = since
    streak = bad_streak = 0
    last = "no sample"
    while True:
        await clock.sleep(interval_s)
        taken = clock.now()
        try:
            stats = parse_db_logs(await providers.logs.lines(since=checkpoint, limit=5000))
        except Exception as exc:
            value, healthy, last = None, False, f"logs unreadable: {exc}"
        else:
            if stats.operations + stats.slow == 0:
                value, healthy, last = None, False, "no database operation logged: unknown"
            else:
                value = float(stats.failures + stats.slow)
                healthy = value == 0
                worst = stats.worst()
                last = (f"{stats.failures} failed, {stats.slow} slow of {stats.operations} operations"
                        + (f" (worst: {worst[0].operation} on {worst[0].table})" if worst else ""))
        # The next sample reads from just before this read: a line logged meanwhile is counted, never missed.
        checkpoint = taken
        samples.append(Sample(at=taken, value=value, healthy=healthy))
        streak = streak + 1 if healthy else 0
        bad_streak = 0 if healthy else bad_streak + 1
        if streak >= consecutive:
            return Verification(check=check, healthy=True, samples=tuple(samples), required_consecutive=consecutive,
                                detail=f"quiet: {last}")
        if clock.monotonic() - started + interval_s > deadline_s or bad_streak >= 2 * consecutive:
            why = (f"{bad_streak} unhealthy samples in a row" if bad_streak >= 2 * consecutive
                   else f"deadline {deadline_s:g}s reached")
            return Verification(check=check, healthy=False, samples=tuple(samples),
                                required_consecutive=consecutive, detail=f"not recovered: {why}; last: {last}")


@step(name="recover: load probe")
async def probe_check(providers: Providers, *, requests: int, p95_ms: float, error_pct: float) -> Verification:
    if providers.probe is None:
        return Verification(check="load probe", healthy=False, detail="no load probe configured: unknown")
    return await providers.probe.verify(requests=requests, p95_ms=p95_ms, error_pct=error_pct)
