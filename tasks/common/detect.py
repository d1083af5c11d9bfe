"""Identify: read the signals a runbook's verdict rests on. Missing data is ``unknown``, never ``ok``."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from remediation.models import Finding, FindingStatus, Phase
from remediation.providers.metrics import RequestStats, app_reads
from remediation.runtime import Providers
from tasks import step

if TYPE_CHECKING:
    from remediation.incident import RunningIncident
    from remediation.providers.http import AppReadTally


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


RATE_LIMIT_CHECK = "app_rate_limit"


def run_app_reads(incident: RunningIncident) -> AppReadTally | None:
    """What this run's reads of the app have met so far; None when the metrics do not come over ``AppHttp``.

    The client is shared by every run of the process, so a concurrent run's 429 counts here too: that errs
    towards "rate limited", and the block it caused stopped this run's reads as well.
    """
    start = incident.app_reads_at_start
    now = app_reads(incident.providers.metrics)
    return now.since(start) if start is not None and now is not None else None


def rate_limit_finding(stats: RequestStats, reads: AppReadTally | None = None) -> Finding:
    """A 429 wall from the app is its own finding: it is not an error spike of the app.

    ``reads`` (:func:`run_app_reads`) makes it cover every read of the run: a 429 met by an earlier reading is
    reported even when the last one succeeded, and a run that never got an answer is ``unknown``, not ``ok``.
    Without it only ``stats``, one reading, is known.
    """
    if reads is None:
        if stats.rate_limited:
            return Finding(check=RATE_LIMIT_CHECK, status=FindingStatus.BREACH, observed="429",
                           detail="the app's rate limit stopped our reads (429 or 0 remaining): unknown until it "
                                  "resets")
        if not stats.available:
            return Finding(check=RATE_LIMIT_CHECK, status=FindingStatus.UNKNOWN,
                           detail=f"only the last reading is known, and it was not read: {stats.reason}")
        return Finding(check=RATE_LIMIT_CHECK, status=FindingStatus.OK, observed="no 429",
                       detail="no 429 in the last reading")
    return _rate_limit_over_run(reads, breached=stats.rate_limited)


def _rate_limit_over_run(reads: AppReadTally, *, breached: bool) -> Finding:
    evidence: dict[str, Any] = asdict(reads)
    common: dict[str, Any] = dict(check=RATE_LIMIT_CHECK, threshold=0, unit="reads", evidence=evidence)
    if reads.rate_limited or breached:
        parts = []
        if reads.too_many:
            parts.append(f"{reads.too_many} answered 429 (last Retry-After {reads.last_retry_after}s)")
        if reads.held_back:
            parts.append(f"{reads.held_back} not sent while the app's limit was in force ({reads.last_hold})")
        return Finding(status=FindingStatus.BREACH, observed=max(reads.rate_limited, 1), **common,
                       detail=f"the app's rate limit stopped {max(reads.rate_limited, 1)} of this run's "
                              f"{reads.attempted} reads: {'; '.join(parts) or '429 or 0 remaining'}; what those "
                              "reads were for is unknown, not healthy")
    # A 5xx is an answer from a gateway or a broken app, not from the app's rate limiter: only the others tell.
    read = reads.answered - reads.server_errors
    if read <= 0:
        why = [f"{reads.unreachable} got no answer"] if reads.unreachable else []
        why += [f"{reads.server_errors} answered 5xx"] if reads.server_errors else []
        why += [f"{reads.over_budget} not sent (our own request budget was spent)"] if reads.over_budget else []
        return Finding(status=FindingStatus.UNKNOWN, **common,
                       detail=f"the app answered none of this run's reads ({'; '.join(why) or 'none was made'}): "
                              "whether it would have rate-limited us is unknown")
    unanswered = reads.attempted - read
    return Finding(status=FindingStatus.OK, observed=0, **common,
                   detail=f"no 429 in this run's {read} answered reads"
                          + (f" ({unanswered} more got no answer, or a 5xx)" if unanswered else ""))


def close_rate_limit_finding(incident: RunningIncident) -> None:
    """At close, make the run's rate-limit finding cover the whole run, not only its identify phase.

    A 429 met while verifying changes it, and the timeline says so; a runbook that made no such finding
    gets one only when the app rate-limited the run (otherwise silence is the truth).
    """
    reads = run_app_reads(incident)
    if reads is None:
        return
    findings = incident.report.findings
    at = next((i for i, f in enumerate(findings) if f.check == RATE_LIMIT_CHECK), None)
    if at is None:
        if reads.rate_limited:
            incident.add_findings([_rate_limit_over_run(reads, breached=False)])
        return
    earlier = findings[at]
    whole = _rate_limit_over_run(reads, breached=earlier.status is FindingStatus.BREACH)
    if (whole.status, whole.observed, whole.evidence) != (earlier.status, earlier.observed, earlier.evidence):
        findings[at] = whole
        incident.note(Phase.CLOSE, f"finding {RATE_LIMIT_CHECK} over the whole run: {whole.status.value}",
                      whole.detail)


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
