"""Recover: watch a signal until it is healthy for N consecutive samples, or give up at a deadline."""

from __future__ import annotations

from remediation.models import Sample, Verification
from remediation.runtime import Providers
from tasks import step


@step(name="recover: verify 5xx error rate")
async def verify_error_rate(providers: Providers, *, threshold_pct: float, min_records: int, window_records: int,
                            consecutive: int, interval_s: float, deadline_s: float) -> Verification:
    """Healthy = a reading below the threshold with enough records; unknown readings reset the streak.

    Gives up early once ``consecutive`` unhealthy readings come in a row after the first healthy one was
    expected, so a failed fix is re-contained quickly instead of exposing users until the deadline.
    """
    clock = providers.clock
    started = clock.monotonic()
    samples: list[Sample] = []
    streak = bad_streak = 0
    while True:
        stats = await providers.metrics.request_stats(window_records)
        value = stats.error_rate_5xx_pct if stats.available else None
        healthy = value is not None and stats.records >= min_records and value < threshold_pct
        samples.append(Sample(at=clock.now(), value=value, healthy=healthy))
        streak = streak + 1 if healthy else 0
        bad_streak = 0 if healthy else bad_streak + 1
        check = f"5xx rate < {threshold_pct:g}% for {consecutive} consecutive samples {interval_s:g}s apart"
        if streak >= consecutive:
            return Verification(check=check, healthy=True, samples=tuple(samples),
                                required_consecutive=consecutive, detail="recovered")
        elapsed = clock.monotonic() - started
        if elapsed + interval_s > deadline_s or bad_streak >= 2 * consecutive:
            why = (f"{bad_streak} unhealthy readings in a row" if bad_streak >= 2 * consecutive
                   else f"deadline {deadline_s:g}s reached")
            last = stats.reason if not stats.available else f"last reading {value}%"
            return Verification(check=check, healthy=False, samples=tuple(samples),
                                required_consecutive=consecutive, detail=f"not recovered: {why}; {last}")
        await clock.sleep(interval_s)
