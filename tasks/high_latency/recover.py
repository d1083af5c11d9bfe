"""Recover for the high-latency runbook: watch latency and the 5xx share for a while, one check per interval.

Unlike the 5xx runbook's "N healthy in a row" verification, latency recovery is a *watch*: the app's runbook
says to watch latency and error rate for 1-2 hours before calling it over. Each check is a timeline note,
a run log line and a step of a Prefect progress artifact. A breach is two readings in a row over a threshold
(one noisy window is not); three unreadable readings in a row also end the watch (unknown is never healthy).
"""

from __future__ import annotations

from prefect.artifacts import acreate_progress_artifact, aupdate_progress_artifact
from prefect.context import FlowRunContext

from remediation.incident import RunningIncident
from remediation.models import Phase, Sample, Verification
from remediation.providers.metrics import RequestStats
from remediation.run_report import artifact_key
from tasks import step
from tasks.high_latency.identify import LatencyThresholds

BREACH_AFTER = 2
UNKNOWN_AFTER = 3


def judge(stats: RequestStats, limits: LatencyThresholds, error_pct: float) -> tuple[bool | None, str]:
    """(healthy, what was read); healthy None = unknown."""
    if not stats.available or stats.p95_ms is None or stats.avg_ms is None or stats.error_rate_5xx_pct is None:
        return None, f"unknown ({stats.reason or 'no latency samples'})"
    if stats.latency_samples < limits.min_records:
        return None, f"unknown (only {stats.latency_samples} duration samples)"
    reading = f"p95 {stats.p95_ms:g} ms, avg {stats.avg_ms:g} ms, 5xx {stats.error_rate_5xx_pct:g}%"
    healthy = (stats.p95_ms <= limits.p95_ms and stats.avg_ms <= limits.avg_warning_ms
               and stats.error_rate_5xx_pct < error_pct)
    return healthy, reading


def check_text(limits: LatencyThresholds, error_pct: float, interval_s: float, duration_s: float) -> str:
    return (f"p95 (ms) with {limits.describe()} and 5xx < {error_pct:g}%, "
            f"every {interval_s:g}s for {duration_s:g}s")


@step(name="recover: watch latency")
async def watch_latency(incident: RunningIncident, *, limits: LatencyThresholds, error_pct: float,
                        window_records: int, duration_s: float, interval_s: float, label: str) -> Verification:
    """Checks every ``interval_s`` until ``duration_s`` has passed (at least once); healthy when no breach
    and no run of unknown readings came, and the last reading was healthy."""
    providers = incident.providers
    clock = providers.clock
    check = check_text(limits, error_pct, interval_s, duration_s)
    progress = await _progress_start(incident.id, label)
    started = clock.monotonic()
    samples: list[Sample] = []
    bad = unknown = 0
    healthy: bool | None = None
    reading = "no reading"
    while True:
        await clock.sleep(interval_s)
        stats = await providers.metrics.request_stats(window_records)
        healthy, reading = judge(stats, limits, error_pct)
        samples.append(Sample(at=clock.now(), value=stats.p95_ms if healthy is not None else None,
                              healthy=bool(healthy)))
        bad = bad + 1 if healthy is False else 0
        unknown = unknown + 1 if healthy is None else 0
        elapsed = clock.monotonic() - started
        verdict = "healthy" if healthy else "unknown" if healthy is None else "over the threshold"
        incident.note(Phase.RECOVER, f"{label} check {len(samples)}: {verdict}",
                      f"{reading}; {min(elapsed, duration_s):.0f}s of {duration_s:g}s")
        await _progress_update(progress, min(100.0, 100.0 * elapsed / duration_s))
        if bad >= BREACH_AFTER:
            return Verification(check=check, healthy=False, samples=tuple(samples), required_consecutive=len(samples),
                                detail=f"breached: {bad} readings in a row over the threshold; last {reading}")
        if unknown >= UNKNOWN_AFTER:
            return Verification(check=check, healthy=False, samples=tuple(samples), required_consecutive=len(samples),
                                detail=f"latency unreadable for {unknown} checks in a row: last {reading}")
        if elapsed + interval_s > duration_s:
            break
    await _progress_update(progress, 100.0)
    if healthy:
        return Verification(check=check, healthy=True, samples=tuple(samples), required_consecutive=len(samples),
                            detail=f"healthy for {duration_s:g}s ({len(samples)} checks); last {reading}")
    return Verification(check=check, healthy=False, samples=tuple(samples), required_consecutive=len(samples),
                        detail=f"the last reading was not healthy: {reading}")


async def _progress_start(incident_id: str, label: str) -> object | None:
    """A progress artifact exists only inside a run; outside one (unit tests) there is none."""
    if FlowRunContext.get() is None:
        return None
    return await acreate_progress_artifact(progress=0.0, key=artifact_key(incident_id, f"{label}-progress"),
                                           description=f"high-latency {label}")


async def _progress_update(artifact_id: object | None, progress: float) -> None:
    if artifact_id is not None:
        await aupdate_progress_artifact(artifact_id=artifact_id, progress=progress)  # type: ignore[arg-type]
