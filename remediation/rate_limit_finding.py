"""The run's rate-limit finding: whether the app's rate limit stopped this run's reads of the app.

Not a step: it judges the reads the run has already made (the ``AppHttp`` client's tally), once when a runbook
identifies and again at close (:func:`close_rate_limit_finding`, from ``remediation.run.finish``) to cover the
whole run.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from remediation.models import Finding, FindingStatus, Phase
from remediation.providers.metrics import RequestStats, app_reads

if TYPE_CHECKING:
    from remediation.incident import RunningIncident
    from remediation.providers.http import AppReadTally


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
