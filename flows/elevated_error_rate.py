"""Runbook 1: Elevated Error Rate (5xx).

When it fires
    An alert on kamkmserve's 5xx share (Alertmanager ``HighErrorRate``, a Sentry spike) or by hand from the
    Prefect UI. The app's docs alert at 1 % errors; the threshold is a parameter.

What it does
    identify     Reads ``/api/monitoring/metrics`` (raw samples) and computes the 5xx share of the most
                 recent request records, ``confirm_samples`` times, ``sample_interval_s`` apart (default: 2 for a
                 manual run, 1 when an alert started it, since the alert rule already required persistence).
                 Also records the app's health JSON (memory only: its status flips on heap ratio), any 429 wall and the
                 error tracker's open issues. Not confirmed -> stand down. Unknown (the app emits no request
                 metrics today, the endpoint is down, garbage, or rate-limited) -> no action, escalate.
    contain      Maintenance mode at the edge on the failing path prefixes (reversible). Never on
                 ``/monitoring`` or ``/api/monitoring``; on ``/`` it counts as destructive.
    investigate  In parallel: deploy history, feature-flag changes, failing endpoints, log excerpts, error
                 tracker issues.
    remediate    If the current release was promoted within ``deploy_lookback_s``: roll back to the previous
                 one (DESTRUCTIVE: the run pauses for approval). Otherwise, if a flag was switched on
                 within the lookback: switch it off (reversible). Otherwise no fix is known: escalate.
    recover      The maintenance page hides the failing paths from the app's own metrics, so verifying with
                 it on would prove nothing: after a fix, maintenance is lifted and the 5xx share must stay
                 under the threshold for ``verify_consecutive`` samples within ``verify_deadline_s``.
                 If not, maintenance is put back (containment kept) and the incident escalates.
    close        Timeline, report and postmortem draft as Prefect artifacts and in the store.

Blast radius and approval
    ``dry_run`` touches nothing. ``approve`` asks before every mutation. ``auto`` applies reversible steps
    within policy; the rollback always asks unless configuration pre-approves ``rollback``. An unanswered
    approval is a deny. Caps: maintenance prefixes per action, actions per service per hour, one active
    remediation per service, kill switch.

Concurrency
    One run per service at a time: the body holds Prefect's global concurrency limit ``remediate-<service>``
    (created on first use). A second run waits up to ``lock_timeout_s``, then escalates without acting.

Taken over after a crash
    A run that dies after its fix was applied is continued by a new run (``continue_at_recover``, started by the
    reconciler of any live replica): it verifies again and lifts the maintenance still on; nothing before recover
    runs again. A run that dies before its fix is applied is closed escalated, naming the maintenance to lift.

Undo
    Maintenance: ``disable_maintenance`` on the same prefixes (done by the run once verified). Rollback:
    promote the release it replaced (recorded as the action's undo; a human decides). Flag: switch it back.
"""

from __future__ import annotations

import asyncio
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
    VerifyOptions,
    WindowRecords,
    runbook_flow,
)
from remediation.incident import RunningIncident
from remediation.models import (
    ActionRecord,
    ActionState,
    DisableMaintenance,
    EnableMaintenance,
    FindingStatus,
    Mode,
    Outcome,
    Phase,
    Plan,
    Verification,
)
from remediation.rate_limit_finding import rate_limit_finding, run_app_reads
from remediation.run import (
    close,
    confirm_readings,
    continued,
    locked,
    start_incident,
    verify_budget,
    without_fix,
)
from remediation.runbooks.containment import failing_prefixes, flag_plan, maintenance_plan, rollback_plan
from tasks.common.act import act
from tasks.common.detect import error_issues_finding, health_finding, sample_error_rate
from tasks.common.investigate import deploy_history, error_tracker, failing_endpoints, flag_changes, log_excerpts
from tasks.common.verify import verify_error_rate

RUNBOOK = "elevated-error-rate"


class ElevatedErrorRateOptions(RunOptions, ConfirmOptions, VerifyOptions, ContinueOptions):
    """This runbook's parameters (the Custom run form)."""

    threshold_pct: float = Field(1.0, title="5xx threshold (%)", description=(
        "Share of the recent requests answered 5xx above which the error rate is a breach; after the fix it must "
        "stay below this."))
    min_records: MinRecords = 20
    window_records: WindowRecords = None
    deploy_lookback_s: float = Field(3600.0, title="Deploy/flag lookback (s)", description=(
        "A release promoted within this many seconds is rolled back (with approval); else a feature flag switched "
        "on within it is switched off. Neither: no fix is known, escalate."))


@runbook_flow(ElevatedErrorRateOptions, name=RUNBOOK,
              description="Elevated 5xx error rate: identify, contain, investigate, remediate, recover")
async def elevated_error_rate(options: ElevatedErrorRateOptions) -> State[dict[str, Any]]:
    providers = composition.current()
    window = options.window_records or providers.settings.metrics_window_records
    incident = start_incident(RUNBOOK, options, providers=providers)
    incident.note(Phase.IDENTIFY, "run started",
                  f"mode {incident.report.mode.value}, threshold {options.threshold_pct:g}%")
    if options.continue_at_recover:
        return await locked(incident, options.service, options.lock_timeout_s, lambda: continued(
            incident, lambda left: _recover(incident, options, window, lift=next(iter(left.still_in_effect(
                Phase.CONTAIN)), None), contain_again=left.first_applied(Phase.CONTAIN))))
    return await locked(incident, options.service, options.lock_timeout_s,
                        lambda: _remediate(incident, options, window))


async def _remediate(incident: RunningIncident, options: ElevatedErrorRateOptions, window: int) -> dict[str, Any]:
    providers = incident.providers
    service, threshold_pct, lookback_s = options.service, options.threshold_pct, options.deploy_lookback_s
    # identify ------------------------------------------------------------------------------------------
    (rate_findings, stats), health, issues = await asyncio.gather(
        sample_error_rate(providers, threshold_pct, options.min_records, window,
                          confirm_readings(options.confirm_samples, options.alert_name), options.sample_interval_s),
        health_finding(providers), error_issues_finding(providers))
    incident.add_findings([*rate_findings, rate_limit_finding(stats, run_app_reads(incident)), health, issues])
    verdict = rate_findings[0].status
    if verdict is FindingStatus.OK:
        incident.note(Phase.IDENTIFY, "not confirmed: standing down")
        return await close(incident, Outcome.STOOD_DOWN)
    if verdict is FindingStatus.UNKNOWN:
        incident.escalate(Phase.IDENTIFY, "5xx error rate is unknown, so nothing is changed: a human must look")
        return await close(incident, Outcome.ESCALATED)

    # contain -------------------------------------------------------------------------------------------
    contained: ActionRecord | None = None
    plan = maintenance_plan(service, failing_prefixes(stats, threshold_pct))
    if plan is None:
        incident.note(Phase.CONTAIN, "no single failing path to contain", "errors are spread across paths")
    else:
        contained = await act(incident, Phase.CONTAIN, plan, evidence_confirmed=True,
                              why=rate_findings[0].detail)

    # investigate ---------------------------------------------------------------------------------------
    since = providers.clock.now() - timedelta(seconds=lookback_s)
    (deploys, releases), (flags, flag_history), endpoints, logs, errors = await asyncio.gather(
        deploy_history(providers, lookback_s), flag_changes(providers, lookback_s),
        failing_endpoints(stats), log_excerpts(providers, since), error_tracker(providers))
    incident.report.evidence.extend([deploys, flags, endpoints, logs, errors])
    for evidence in incident.report.evidence:
        incident.note(Phase.INVESTIGATE, f"evidence {evidence.source}", evidence.summary)

    # remediate -----------------------------------------------------------------------------------------
    now = providers.clock.now()
    fix_plan: Plan | None = rollback_plan(service, releases, now, lookback_s)
    if fix_plan is None:
        fix_plan = flag_plan(service, flag_history, now, lookback_s)
    fix: ActionRecord | None = None
    if fix_plan is None:
        incident.note(Phase.REMEDIATE, "no fix indicated", "no recent deploy or flag change precedes the spike")
    else:
        fix = await act(incident, Phase.REMEDIATE, fix_plan, evidence_confirmed=True, why=fix_plan.reason)

    if incident.report.mode is Mode.DRY_RUN:
        return await close(incident, Outcome.DRY_RUN)
    if fix is None or fix.state is not ActionState.APPLIED:
        return await close(incident, _without_fix(incident, fix))

    # recover -------------------------------------------------------------------------------------------
    return await _recover(incident, options, window, lift=contained, contain_again=contained)


async def _recover(incident: RunningIncident, options: ElevatedErrorRateOptions, window: int, *,
                   lift: ActionRecord | None, contain_again: ActionRecord | None) -> dict[str, Any]:
    """Lift the maintenance still on (``lift``), verify the fix; if it did not hold, put ``contain_again`` back.

    A continuation passes what its ledger says: maintenance the dead run already lifted is not lifted twice."""
    verification = await _lift_and_verify(incident, lift, options, window)
    incident.report.verification = verification
    if verification.healthy:
        return await close(incident, Outcome.RECOVERED)
    if contain_again is not None and contain_again.applied:
        await act(incident, Phase.RECOVER, contain_again.plan, evidence_confirmed=True,
                  why="the fix did not hold: contain again")
    incident.escalate(Phase.RECOVER, f"the fix did not hold ({verification.detail}); containment kept")
    return await close(incident, Outcome.ESCALATED)


def _without_fix(incident: RunningIncident, fix: ActionRecord | None) -> Outcome:
    kept = ("containment kept" if incident.applied("enable_maintenance")
            else "containment may be on (its outcome is unknown)" if incident.unknown("enable_maintenance")
            else "nothing contained")
    return without_fix(incident, fix, kept)


async def _lift_and_verify(incident: RunningIncident, contained: ActionRecord | None,
                           options: ElevatedErrorRateOptions, window: int) -> Verification:
    providers = incident.providers
    budget = verify_budget(providers.settings, options)
    if contained is not None and contained.applied and isinstance(contained.plan, EnableMaintenance):
        lift = DisableMaintenance(service=contained.plan.service, path_prefixes=contained.plan.path_prefixes,
                                  reason="undo containment to verify the fix under real traffic")
        lifted = await act(incident, Phase.RECOVER, lift, evidence_confirmed=True, why=lift.reason)
        if not lifted.applied:
            return Verification(check="lift maintenance", healthy=False,
                                detail=f"maintenance could not be lifted: {'; '.join(lifted.reasons)}")
    incident.note(Phase.RECOVER, "verifying", f"{budget['consecutive']} healthy samples {budget['interval_s']:g}s "
                  f"apart within {budget['deadline_s']:g}s")
    verification = await verify_error_rate(providers, threshold_pct=options.threshold_pct,
                                           min_records=options.min_records, window_records=window, **budget)
    incident.note(Phase.RECOVER, f"verification {'healthy' if verification.healthy else 'failed'}",
                  verification.detail)
    return verification



