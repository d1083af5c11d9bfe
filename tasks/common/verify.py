"""Recover: watch a signal until it is healthy for N consecutive samples, or give up at a deadline."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

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


Reading = tuple[float | None, bool, str]
"""One sample: (value, healthy, words); value None = unknown."""


async def verify_since(providers: Providers, *, check: str, since: datetime, consecutive: int, interval_s: float,
                       deadline_s: float, read: Callable[[datetime], Awaitable[Reading]],
                       healthy_word: str) -> Verification:
    """Every ``interval_s``, ``read`` what happened since the previous sample (the first: since ``since``).

    Healthy = ``consecutive`` healthy samples in a row; gives up at the deadline or after 2 x ``consecutive``
    unhealthy samples in a row. The next sample reads from just before this read: nothing logged meanwhile is
    missed.
    """
    clock = providers.clock
    started = clock.monotonic()
    samples: list[Sample] = []
    checkpoint = since
    streak = bad_streak = 0
    last = "no sample"
    while True:
        await clock.sleep(interval_s)
        taken = clock.now()
        value, healthy, last = await read(checkpoint)
        checkpoint = taken
        samples.append(Sample(at=taken, value=value, healthy=healthy))
        streak = streak + 1 if healthy else 0
        bad_streak = 0 if healthy else bad_streak + 1
        if streak >= consecutive:
            return Verification(check=check, healthy=True, samples=tuple(samples), required_consecutive=consecutive,
                                detail=f"{healthy_word}: {last}")
        if clock.monotonic() - started + interval_s > deadline_s or bad_streak >= 2 * consecutive:
            why = (f"{bad_streak} unhealthy samples in a row" if bad_streak >= 2 * consecutive
                   else f"deadline {deadline_s:g}s reached")
            return Verification(check=check, healthy=False, samples=tuple(samples),
                                required_consecutive=consecutive, detail=f"not recovered: {why}; last: {last}")
