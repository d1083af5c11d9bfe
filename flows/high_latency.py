"""Runbook 2: High Latency.

When it fires
    An alert on kamkmserve's response times (Alertmanager ``HighLatency``/``HighResponseTime``/``SlowRequests``/
    ``HighP95Latency``, a Sentry metric alert on ``p95(transaction.duration)`` or ``avg(transaction.duration)``)
    or by hand from the Prefect UI. Thresholds are the app's own (docs/reference/kamkmserve.md §11): p95 above 500 ms
    (its load-test bar) or an average above 1000 ms (its health rule's warning; critical above 2000 ms); all are
    parameters.

What it does
    identify     Reads ``/api/monitoring/metrics`` (raw ``http_request_duration`` samples) and computes p95
                 (nearest rank) and the average of the most recent requests, overall and per path,
                 ``confirm_samples`` times ``sample_interval_s`` apart (2 for a manual run, 1 when an alert
                 started it). Also counts the app's ``Slow request detected`` log lines and reads the health
                 JSON's ``avgResponseTime``. Not confirmed -> stand down. Unknown (the app emits no request
                 metrics today, the endpoint is down, garbage, or rate-limited) -> no action, escalate.
    contain      Scale up: ``ceil(replicas x scale_factor)`` capped by ``max_replicas``, kept ``ttl_s``
                 (reversible). Where the platform has no capacity lever (kamkmserve on Vercel has none), or the
                 replica count cannot be read, or it is at the cap: shed load with maintenance at the edge on
                 the hottest path (never ``/``, ``/monitoring`` or ``/api/monitoring``).
    investigate  In parallel: hot endpoints (p95 by path), database operation timings by table and operation,
                 external dependency calls (the app times none: stated as unavailable), deploy history, logs.
    remediate    A recommendation for people, never an automatic change: an index for the table behind a slow
                 SELECT (the database-errors runbook does that with approval), a cache or timeout for one hot
                 path, a look at a release promoted just before, or "keep scaled and plan capacity" for pure load.
    recover      Watches p95, average and the 5xx share every ``watch_interval_s`` for ``watch_s`` (the app's
                 runbook says 1-2 h), each check on the timeline and a progress artifact. Healthy throughout:
                 when the TTL ends (at the end of the watch if it is shorter) the scale-up is undone (scale
                 down) or maintenance lifted, and latency checked once more; a breach then restores the
                 containment and escalates (the load has not gone). A breach during the watch escalates with
                 the containment kept.
    close        Timeline, report and postmortem draft as Prefect artifacts and in the store.

Blast radius and approval
    ``dry_run`` touches nothing. ``approve`` asks before every mutation. ``auto`` applies the scale-up (or the
    maintenance) within policy: at most ``max_replicas`` and ``max_scale_factor`` x the current count,
    ``max_maintenance_prefixes``, actions per service per hour, one active remediation per service, kill switch.
    An unanswered approval is a deny. Nothing destructive is done by this runbook.

Concurrency
    One run per service at a time: the body holds Prefect's global concurrency limit ``remediate-<service>``
    (created on first use). A second run waits up to ``lock_timeout_s``, then escalates without acting.

Undo
    Scale-up: scale back down to the earlier count (done by the run after a healthy watch and the TTL).
    Maintenance: ``disable_maintenance`` on the same prefixes (done by the run after a healthy watch).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from prefect.client.schemas.objects import State
from pydantic import Field

from remediation import composition
from remediation.forms import (
    ConfirmOptions,
    ContinueOptions,
    MinRecords,
    RunOptions,
    WindowRecords,
    runbook_flow,
)
from remediation.incident import RunningIncident
from remediation.models import (
    ActionRecord,
    Evidence,
    FindingStatus,
    Mode,
    Outcome,
    Phase,
    Plan,
    ScaleUp,
    Verification,
)
from remediation.rate_limit_finding import rate_limit_finding, run_app_reads
from remediation.run import Resumed, close, confirm_readings, continued, locked, not_applied, start_incident
from tasks.common.act import act
from tasks.common.detect import health_finding
from tasks.common.investigate import deploy_history, log_excerpts
from tasks.high_latency.identify import (
    LatencyThresholds,
    health_latency_finding,
    read_replicas,
    sample_latency,
    scale_up_plan,
    shed_load_plan,
    slow_request_finding,
)
from tasks.high_latency.investigate import db_timings, dependency_calls, hot_endpoints, recommend
from tasks.high_latency.recover import BREACH_AFTER, watch_latency

RUNBOOK = "high-latency"
LOG_LOOKBACK_S = 300.0  # the app's own health window
DB_WINDOW_SAMPLES = 1000


@dataclass(frozen=True)
class _Job:
    """The run's resolved parameters (settings filled in), passed between phases."""

    service: str
    limits: LatencyThresholds
    error_pct: float
    window: int
    confirm: int
    sample_interval_s: float
    scale_factor: float
    ttl_s: int
    watch_s: float
    watch_interval_s: float
    deploy_lookback_s: float


class HighLatencyOptions(RunOptions, ConfirmOptions, ContinueOptions):
    """This runbook's parameters (the Custom run form)."""

    p95_threshold_ms: float | None = Field(None, title="p95 threshold (ms)", description=(
        "p95 of the recent requests above which latency is a breach; after containment it must stay at or under it. "
        "None: the REMEDIATE_LATENCY_P95_MS setting (default 500, the app's load-test bar)."))
    avg_warning_ms: float | None = Field(None, title="Average warning (ms)", description=(
        "An average response time above this is a breach too. None: the REMEDIATE_LATENCY_AVG_WARNING_MS setting "
        "(default 1000, the app's health rule)."))
    avg_critical_ms: float | None = Field(None, title="Average critical (ms)", description=(
        "An average above this is reported as critical (informational). None: the "
        "REMEDIATE_LATENCY_AVG_CRITICAL_MS setting (default 2000)."))
    error_threshold_pct: float = Field(1.0, title="5xx ceiling while watching (%)", description=(
        "During the recovery watch the 5xx share must stay below this."))
    window_records: WindowRecords = None
    min_records: MinRecords = 20
    scale_factor: float = Field(2.0, title="Scale factor", description=(
        "Scale up to ceil(current replicas x this), capped by REMEDIATE_MAX_REPLICAS; policy refuses more than "
        "REMEDIATE_MAX_SCALE_FACTOR."))
    ttl_s: int | None = Field(None, title="Scale-up TTL (s)", description=(
        "How long the extra replicas are kept before the run scales back down (after a healthy watch). None: the "
        "REMEDIATE_SCALE_TTL_S setting (default 3600)."))
    watch_s: float | None = Field(None, title="Recovery watch (s)", description=(
        "How long latency and the 5xx share are watched after containment (the app's runbook says 1-2 h). None: "
        "the REMEDIATE_LATENCY_WATCH_S setting (default 3600)."))
    watch_interval_s: float | None = Field(None, title="Seconds between watch checks", description=(
        "One check of p95, average and 5xx per interval. None: the REMEDIATE_VERIFY_INTERVAL_S setting "
        "(default 15)."))
    deploy_lookback_s: float = Field(3600.0, title="Change lookback (s)", description=(
        "A release promoted or a change made within this many seconds before now is treated as the suspected "
        "cause."))


@runbook_flow(HighLatencyOptions, name=RUNBOOK,
              description="High latency: identify, contain (scale up), investigate, remediate, recover")
async def high_latency(options: HighLatencyOptions) -> State[dict[str, Any]]:
    providers = composition.current()
    settings = providers.settings
    limits = LatencyThresholds(
        p95_ms=options.p95_threshold_ms or settings.latency_p95_ms,
        avg_warning_ms=options.avg_warning_ms or settings.latency_avg_warning_ms,
        avg_critical_ms=options.avg_critical_ms or settings.latency_avg_critical_ms,
        min_records=options.min_records,
    )
    incident = start_incident(RUNBOOK, options, providers=providers)
    incident.note(Phase.IDENTIFY, "run started", f"mode {incident.report.mode.value}, {limits.describe()}")
    job = _Job(
        service=options.service, limits=limits, error_pct=options.error_threshold_pct,
        window=options.window_records or settings.metrics_window_records,
        confirm=confirm_readings(options.confirm_samples, options.alert_name),
        sample_interval_s=options.sample_interval_s, scale_factor=options.scale_factor,
        ttl_s=options.ttl_s or settings.scale_ttl_s, watch_s=options.watch_s or settings.latency_watch_s,
        watch_interval_s=options.watch_interval_s or settings.verify_interval_s,
        deploy_lookback_s=options.deploy_lookback_s,
    )
    if options.continue_at_recover:
        return await locked(incident, options.service, options.lock_timeout_s, lambda: continued(
            incident, lambda left: _continue(incident, job, left)))
    return await locked(incident, options.service, options.lock_timeout_s, lambda: _remediate(incident, job))


async def _continue(incident: RunningIncident, job: _Job, left: Resumed) -> dict[str, Any]:
    """Recover after a dead run: watch under the containment still on, or, when the dead run had already undone
    it, only the watch that follows an undo (never undone twice)."""
    still = left.still_in_effect(Phase.CONTAIN)
    if still:
        return await _recover(incident, job, still[0])
    contained = left.first_applied(Phase.CONTAIN)
    assert contained is not None  # continued() checked that the containment was applied
    reverse = contained.plan.undo()
    return await _confirm_undone(incident, job, contained, reverse.summary() if reverse else "the undo", None)


async def _remediate(incident: RunningIncident, job: _Job) -> dict[str, Any]:
    providers = incident.providers
    settings = providers.settings
    # identify ------------------------------------------------------------------------------------------
    latency, stats = await sample_latency(providers, job.limits, job.window, job.confirm, job.sample_interval_s)
    slow, health_avg, memory = await asyncio.gather(
        slow_request_finding(providers, LOG_LOOKBACK_S, stats.available),
        health_latency_finding(providers, job.limits, stats.available), health_finding(providers))
    incident.add_findings([*latency, slow, health_avg, rate_limit_finding(stats, run_app_reads(incident)), memory])
    verdict = latency[0]
    if verdict.status is FindingStatus.OK:
        incident.note(Phase.IDENTIFY, "not confirmed: standing down")
        return await close(incident, Outcome.STOOD_DOWN)
    if verdict.status is FindingStatus.UNKNOWN:
        incident.escalate(Phase.IDENTIFY, "latency is unknown, so nothing is changed: a human must look")
        return await close(incident, Outcome.ESCALATED)

    # contain -------------------------------------------------------------------------------------------
    replicas, no_scale = await read_replicas(providers, job.service)
    plan: Plan | None = None
    if replicas is not None:
        plan = scale_up_plan(job.service, replicas, job.scale_factor, settings.max_replicas, job.ttl_s)
        if plan is None:
            no_scale = f"{replicas} replicas already (cap {settings.max_replicas}, factor {job.scale_factor:g})"
    if plan is None:
        incident.note(Phase.CONTAIN, "cannot scale up: shedding load instead", no_scale)
        plan = shed_load_plan(job.service, stats, job.limits.p95_ms)
    contained: ActionRecord | None = None
    if plan is None:
        incident.note(Phase.CONTAIN, "nothing to contain with", "no capacity lever and no path that may be shed")
    else:
        contained = await act(incident, Phase.CONTAIN, plan, evidence_confirmed=True, why=verdict.detail)

    # investigate ---------------------------------------------------------------------------------------
    since = providers.clock.now() - timedelta(seconds=LOG_LOOKBACK_S)
    endpoints, (db_evidence, db), dependencies, (deploys, releases), logs = await asyncio.gather(
        hot_endpoints(stats, job.limits.p95_ms), db_timings(providers, DB_WINDOW_SAMPLES), dependency_calls(),
        deploy_history(providers, job.deploy_lookback_s), log_excerpts(providers, since))
    incident.report.evidence.extend([endpoints, db_evidence, dependencies, deploys, logs])
    for evidence in incident.report.evidence:
        incident.note(Phase.INVESTIGATE, f"evidence {evidence.source}", evidence.summary)

    # remediate: a recommendation for people, nothing applied -------------------------------------------
    advice = recommend(stats, db, releases, providers.clock.now(), job.deploy_lookback_s, job.limits.p95_ms)
    incident.report.evidence.append(Evidence(source="recommendation", summary=advice.summary,
                                             items=({"kind": advice.kind},)))
    incident.note(Phase.REMEDIATE, f"recommendation ({advice.kind}) for people", advice.summary)

    if incident.report.mode is Mode.DRY_RUN:
        return await close(incident, Outcome.DRY_RUN)
    if contained is None or not contained.applied:
        return await close(incident, _not_contained(incident, contained, advice.summary))

    # recover -------------------------------------------------------------------------------------------
    return await _recover(incident, job, contained)


def _not_contained(incident: RunningIncident, contained: ActionRecord | None, advice: str) -> Outcome:
    if contained is None:
        incident.escalate(Phase.CONTAIN, f"latency breached and nothing could contain it; {advice}")
        return Outcome.ESCALATED
    return not_applied(incident, Phase.CONTAIN, contained, "nothing changed")


async def _recover(incident: RunningIncident, job: _Job, contained: ActionRecord) -> dict[str, Any]:
    providers = incident.providers
    clock = providers.clock
    incident.note(Phase.RECOVER, "watching", f"{job.limits.describe()}, 5xx < {job.error_pct:g}%, every "
                  f"{job.watch_interval_s:g}s for {job.watch_s:g}s")
    watched = await _watch(incident, job, job.watch_s, "watch")
    if watched.healthy and isinstance(contained.plan, ScaleUp):
        held = (clock.now() - (contained.completed_at or clock.now())).total_seconds()
        if contained.plan.ttl_s > held:
            remaining = contained.plan.ttl_s - held
            incident.note(Phase.RECOVER, "keeping the scale-up until its TTL ends", f"{remaining:.0f}s more")
            more = await _watch(incident, job, remaining, "ttl watch")
            watched = _joined(watched, more)
    incident.report.verification = watched
    if not watched.healthy:
        incident.escalate(Phase.RECOVER, f"latency did not recover under containment ({watched.detail}); "
                          f"containment kept: {contained.plan.summary()}")
        return await close(incident, Outcome.ESCALATED)

    reverse = contained.plan.undo()
    if reverse is None:  # scale-up and maintenance both have one; anything else stays for a human
        incident.escalate(Phase.RECOVER, f"latency recovered; {contained.plan.summary()} has no undo: a human decides")
        return await close(incident, Outcome.ESCALATED)
    undo = reverse.model_copy(update={"reason": "latency healthy through the watch and the TTL has ended"})
    undone = await act(incident, Phase.RECOVER, undo, evidence_confirmed=True, why=undo.reason)
    if not undone.applied:
        incident.escalate(Phase.RECOVER, f"latency recovered but {undo.summary()} was not applied "
                          f"({undone.error or '; '.join(undone.reasons)}); containment still in place")
        return await close(incident, Outcome.ESCALATED)
    return await _confirm_undone(incident, job, contained, undo.summary(), watched)


async def _confirm_undone(incident: RunningIncident, job: _Job, contained: ActionRecord, undone: str,
                          watched: Verification | None) -> dict[str, Any]:
    """Watch once containment is undone; if latency breaches again, put it back and escalate."""
    # Long enough for BREACH_AFTER checks, so one noisy window neither fails nor passes it alone.
    after = await _watch(incident, job, (BREACH_AFTER + 0.5) * job.watch_interval_s, "after undo")
    incident.report.verification = after if watched is None else _joined(watched, after)
    if after.healthy:
        return await close(incident, Outcome.RECOVERED)
    again = await act(incident, Phase.RECOVER, contained.plan, evidence_confirmed=True,
                      why="latency breached again once containment was undone: the load has not gone")
    kept = "restored" if again.applied else f"NOT restored ({again.error or '; '.join(again.reasons)})"
    incident.escalate(Phase.RECOVER, f"latency breached again after {undone} ({after.detail}); "
                      f"containment {kept}; plan capacity")
    return await close(incident, Outcome.ESCALATED)


async def _watch(incident: RunningIncident, job: _Job, duration_s: float, label: str) -> Verification:
    verification = await watch_latency(incident, limits=job.limits, error_pct=job.error_pct,
                                       window_records=job.window, duration_s=duration_s,
                                       interval_s=job.watch_interval_s, label=label)
    incident.note(Phase.RECOVER, f"{label} {'healthy' if verification.healthy else 'failed'}", verification.detail)
    return verification


def _joined(first: Verification, then: Verification) -> Verification:
    samples = (*first.samples, *then.samples)
    return Verification(check=first.check, healthy=first.healthy and then.healthy, samples=samples,
                        required_consecutive=len(samples), detail=f"{first.detail}; then {then.detail}")


