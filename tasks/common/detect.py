"""Identify: read the signals a runbook's verdict rests on. Missing data is ``unknown``, never ``ok``.

The run's rate-limit finding, which judges the reads the run made rather than reading anything, is
``remediation.rate_limit_finding``.
"""

from __future__ import annotations

from remediation.models import Finding, FindingStatus
from remediation.providers.metrics import RequestStats
from remediation.runtime import Providers
from tasks import step


def error_rate_finding(stats: RequestStats, threshold_pct: float, min_records: int) -> Finding:
    """5xx share of the most recent request records against the threshold."""
    evidence = {"records": stats.records, "errors_5xx": stats.errors_5xx, "errors_4xx": stats.errors_4xx}
    if not stats.available or stats.error_rate_5xx_pct is None:
        return Finding(check="error_rate_5xx", status=FindingStatus.UNKNOWN, threshold=threshold_pct, unit="%",
                       detail=stats.reason or "no request records", evidence=evidence)
    if stats.records < min_records:
        return Finding(check="error_rate_5xx", status=FindingStatus.UNKNOWN, observed=stats.error_rate_5xx_pct,
                       threshold=threshold_pct, unit="%",
                       detail=f"only {stats.records} request records (< {min_records}): too few to judge",
                       evidence=evidence)
    breach = stats.error_rate_5xx_pct > threshold_pct
    top = ", ".join(f"{r.method} {r.path} {r.errors_5xx}/{r.total}" for r in stats.failing_routes()[:3])
    return Finding(check="error_rate_5xx", status=FindingStatus.BREACH if breach else FindingStatus.OK,
                   observed=stats.error_rate_5xx_pct, threshold=threshold_pct, unit="%",
                   detail=f"{stats.errors_5xx} of the last {stats.records} requests answered 5xx"
                          + (f"; top: {top}" if top else ""),
                   evidence=evidence)


@step(name="identify: 5xx error rate")
async def sample_error_rate(providers: Providers, threshold_pct: float, min_records: int,
                            window_records: int, samples: int, interval_s: float
                            ) -> tuple[list[Finding], RequestStats]:
    """Take ``samples`` readings ``interval_s`` apart; a breach is confirmed only if every reading breaches."""
    readings: list[Finding] = []
    stats = RequestStats(available=False, reason="not sampled")
    for i in range(samples):
        if i:
            await providers.clock.sleep(interval_s)
        stats = await providers.metrics.request_stats(window_records)
        readings.append(error_rate_finding(stats, threshold_pct, min_records))
    statuses = {f.status for f in readings}
    last = readings[-1]
    if statuses == {FindingStatus.BREACH}:
        verdict = last
    elif FindingStatus.UNKNOWN in statuses:
        unknown = next(f for f in readings if f.status is FindingStatus.UNKNOWN)
        verdict = unknown
    else:
        verdict = last.model_copy(update={
            "status": FindingStatus.OK,
            "detail": f"{last.detail}; not every one of {samples} readings breached",
        })
    series = [f.observed for f in readings]
    return [verdict.model_copy(update={"evidence": {**verdict.evidence, "readings": series}})], stats


@step(name="identify: app health JSON")
async def health_finding(providers: Providers) -> Finding:
    """Memory from ``format=health``, reported as ``info``: the app's status flips healthy/warning/critical on the heap
    ratio alone, even on an idle process (reference, observed at runtime), so it is neither an incident nor proof
    of health."""
    health = await providers.metrics.health()
    if not health.available or health.memory_pct is None:
        return Finding(check="memory_usage", status=FindingStatus.UNKNOWN, threshold=90.0, unit="%",
                       detail=health.reason or "no memory figure")
    return Finding(check="memory_usage", status=FindingStatus.INFO, observed=round(health.memory_pct, 1),
                   threshold=90.0, unit="%",
                   detail=f"heap used/total {health.memory_pct:.1f}%; the app calls that '{health.status}' "
                          "(heap ratio only; informational, never a verdict)",
                   evidence={"app_status": health.status, "over_app_critical": health.memory_pct > 90.0})


@step(name="identify: error tracker issues")
async def error_issues_finding(providers: Providers) -> Finding:
    try:
        issues = await providers.errors.issues()
    except Exception as exc:
        return Finding(check="error_tracker_issues", status=FindingStatus.UNKNOWN,
                       detail=f"error tracker unreadable: {exc}")
    unresolved = [i for i in issues if i.status == "unresolved"]
    # Context for the 5xx verdict, never one itself: unresolved issues linger long after an incident ends.
    return Finding(check="error_tracker_issues", status=FindingStatus.INFO,
                   observed=len(unresolved), threshold=0, unit="issues",
                   detail="; ".join(f"{i.title} ({i.count} events, release {i.release})" for i in unresolved[:3])
                   or "none unresolved")
