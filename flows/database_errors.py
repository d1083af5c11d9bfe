"""Runbook 3: Database Performance/Errors.

When it fires
    An alert on failing or slow database work (Alertmanager ``DatabaseErrors``, ``HighDbErrorRate``,
    ``PostgresLockWaits``, ``SlowQueries``; a Sentry alert whose query names the database or ``NeonDbError``),
    or by hand from the Prefect UI.

What it does
    identify     Reads the app's ``db_operation_duration`` samples (failures and p95 by table and operation,
                 ``confirm_samples`` readings ``sample_interval_s`` apart) and its log lines ``DB <OP> on <table>
                 failed``, ``Database operation failed: …`` and ``Slow database operation: …`` of the last
                 ``log_window_s``; also the 5xx share (informational). A breach needs ``min_failures`` failures,
                 a p95 over ``slow_op_ms``, or ``min_slow`` slow operations. Not confirmed -> stand down. Every
                 database signal unknown (the app as it is never emits them) -> nothing is changed, escalate.
    contain      Pauses the heavy background job pools (workers to 0, previous counts remembered): less load
                 while we look. Reversible. No jobs lever on the platform -> noted, the run goes on.
    investigate  In parallel, with the database inspector: blocking locks (who blocks whom, for how long, with
                 which statement), long-running and idle-in-transaction sessions, tables flagged for sequential
                 scans, unused indexes, pg_stat_statements' top statements (or that it is missing); plus deploy
                 history (a recent release may have changed the queries) and the error tracker.
    remediate    In this order: a root blocker whose transaction has been open ``long_running_s`` or more ->
                 ``pg_terminate_backend`` (DESTRUCTIVE: its transaction is rolled back; approval shows the exact
                 statement). A table flagged for sequential scans with a column the slow queries filter on (from
                 pg_stat_statements, the sessions, or the error tracker's slow-query spans) -> ``CREATE INDEX
                 CONCURRENTLY`` (DESTRUCTIVE: real load on a big table; approval shows the statement). A release
                 promoted within ``deploy_lookback_s`` and neither of those -> roll back (DESTRUCTIVE). Nothing
                 indicated -> escalate.
    recover      ``verify_consecutive`` samples ``verify_interval_s`` apart with no failed or slow database
                 operation logged since the fix (within ``verify_deadline_s``), then the load probe: ``probe_requests``
                 GETs of public pages, p95 < ``probe_p95_ms`` and errors < ``probe_error_pct`` % (the app's own
                 load-test gate). Both healthy -> the paused jobs are resumed and the incident is recovered (a
                 resume that is refused or fails escalates: the database is fine, the background work is not).
                 Either check fails -> escalate; the jobs stay paused (containment kept).
    close        Timeline, report and postmortem draft as Prefect artifacts and in the store.

Blast radius and approval
    ``dry_run`` touches nothing. ``approve`` asks before every mutation. ``auto`` pauses and resumes jobs by
    policy; terminating a backend, creating an index and rolling back always ask unless configuration
    pre-approves the kind. An unanswered approval is a deny: nothing is terminated or built, the jobs stay paused
    and the incident escalates. Caps: actions per service per hour, one active remediation per service, kill switch.

Concurrency
    One run per service at a time (Prefect global concurrency limit ``remediate-<service>``). A second run waits
    up to ``lock_timeout_s``, then escalates without acting.

Undo
    Jobs: resumed with the remembered worker counts (done by the run once verified). Terminate: none (the
    transaction is gone; the job may retry its work). Index: ``DROP INDEX CONCURRENTLY`` by a human if it proves
    useless. Rollback: promote the release it replaced.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from prefect.client.schemas.objects import State
from pydantic import Field

from remediation import composition
from remediation.forms import ConfirmOptions, ContinueOptions, RunOptions, VerifyOptions, runbook_flow
from remediation.incident import RunningIncident
from remediation.models import (
    ActionRecord,
    ActionState,
    Evidence,
    FindingStatus,
    Mode,
    Outcome,
    PauseJobs,
    Phase,
    Plan,
    Verification,
)
from remediation.providers.dbqueries import LockReport, ScanReport, SessionReport, StatementReport
from remediation.run import (
    close,
    confirm_readings,
    continued,
    locked,
    start_incident,
    verify_budget,
    without_fix,
)
from remediation.runbooks.containment import rollback_plan
from remediation.runbooks.database_errors import index_plan, pause_jobs_plan, terminate_plan
from tasks.common.act import act
from tasks.common.detect import error_rate_finding
from tasks.common.investigate import deploy_history, error_tracker
from tasks.database_errors.identify import log_finding, read_db_logs, sample_db_operations, verdict
from tasks.database_errors.investigate import (
    lock_evidence,
    scan_evidence,
    session_evidence,
    statement_evidence,
    unused_index_evidence,
)
from tasks.database_errors.verify import probe_check, verify_db_quiet

RUNBOOK = "database-errors"


class DatabaseErrorsOptions(RunOptions, ConfirmOptions, VerifyOptions, ContinueOptions):
    """This runbook's parameters (the Custom run form)."""

    min_failures: int = Field(3, title="Failures to act on", description=(
        "Failed database operations (in the app's recent metric samples, or logged within the log window) at or "
        "above which the database is in breach."))
    slow_op_ms: float = Field(500.0, title="Slow operation p95 (ms)", description=(
        "p95 of one table and operation above which it is too slow (the app calls a database operation over 500 ms "
        "slow)."))
    min_slow: int = Field(3, title="Slow operations to act on", description=(
        "'Slow database operation' lines within the log window at or above which the database is in breach."))
    window_samples: int = Field(1000, title="Samples per reading", description=(
        "How many of the most recent db_operation_duration samples one reading uses."))
    log_window_s: float = Field(300.0, title="Log window (s)", description=(
        "How far back the identify phase reads the app's database log lines."))
    long_running_s: float | None = Field(None, title="Lock held too long (s)", description=(
        "A blocking session whose transaction has been open this long is terminated (with approval); also the "
        "floor for the long-running session report. None: the REMEDIATE_DB_LONG_RUNNING_S setting (default 30)."))
    min_seq_scans: int | None = Field(None, title="Sequential scans to judge", description=(
        "Tables with fewer sequential scans are not judged for a missing index. None: the "
        "REMEDIATE_DB_MIN_SEQ_SCANS setting (default 50)."))
    deploy_lookback_s: float = Field(3600.0, title="Deploy lookback (s)", description=(
        "A release promoted within this many seconds, with no lock or index cause, is rolled back (with approval). "
        "Otherwise no fix is known: escalate."))
    probe_requests: int | None = Field(None, title="Probe requests", description=(
        "GETs of public pages the load probe sends after the fix (they count against the app's 100 requests/min). "
        "None: the REMEDIATE_PROBE_REQUESTS setting (default 20)."))
    probe_p95_ms: float | None = Field(None, title="Probe p95 limit (ms)", description=(
        "The probe's p95 must stay below this (the app's load-test gate). None: the REMEDIATE_PROBE_P95_MS setting "
        "(default 500)."))
    probe_error_pct: float | None = Field(None, title="Probe error limit (%)", description=(
        "The probe's share of failed requests must stay below this. None: the REMEDIATE_PROBE_ERROR_PCT setting "
        "(default 1)."))


@runbook_flow(DatabaseErrorsOptions, name=RUNBOOK,
              description="Database performance/errors: identify, contain, investigate, remediate, recover")
async def database_errors(options: DatabaseErrorsOptions) -> State[dict[str, Any]]:
    providers = composition.current()
    settings = providers.settings
    incident = start_incident(RUNBOOK, options, providers=providers)
    incident.note(Phase.IDENTIFY, "run started", f"mode {incident.report.mode.value}, {options.min_failures}+ "
                  f"failures or p95 > {options.slow_op_ms:g} ms")
    verify = verify_budget(settings, options)
    probe = dict(requests=options.probe_requests or settings.probe_requests,
                 p95_ms=options.probe_p95_ms or settings.probe_p95_ms,
                 error_pct=options.probe_error_pct if options.probe_error_pct is not None else settings.probe_error_pct)
    if options.continue_at_recover:
        return await locked(incident, options.service, options.lock_timeout_s, lambda: continued(
            incident, lambda left: _recover(incident, fix=left.first_applied(Phase.REMEDIATE), paused=next(iter(
                left.still_in_effect(Phase.CONTAIN)), None), verify=verify, probe=probe)))
    return await locked(incident, options.service, options.lock_timeout_s,
                        lambda: _remediate(incident, options, verify=verify, probe=probe))


async def _remediate(incident: RunningIncident, options: DatabaseErrorsOptions, *, verify: dict[str, Any],
                     probe: dict[str, Any]) -> dict[str, Any]:
    providers = incident.providers
    settings = providers.settings
    service, min_failures, log_window_s = options.service, options.min_failures, options.log_window_s
    long_running_s = options.long_running_s or settings.db_long_running_s
    deploy_lookback_s = options.deploy_lookback_s
    # identify ------------------------------------------------------------------------------------------
    (db_findings, _), logs, requests = await asyncio.gather(
        sample_db_operations(providers, options.window_samples, confirm_readings(options.confirm_samples,
                             options.alert_name), options.sample_interval_s, min_failures, options.slow_op_ms),
        read_db_logs(providers, log_window_s),
        providers.metrics.request_stats(settings.metrics_window_records))
    signals = [*db_findings, log_finding(logs, min_failures, options.min_slow, log_window_s)]
    summary = verdict(signals)
    incident.add_findings([summary, *signals, error_rate_finding(requests, 1.0, 20).informational(
        "context: this runbook's verdict is the database signals")])
    if summary.status is FindingStatus.OK:
        incident.note(Phase.IDENTIFY, "not confirmed: standing down")
        return await close(incident, Outcome.STOOD_DOWN)
    if summary.status is FindingStatus.UNKNOWN:
        incident.escalate(Phase.IDENTIFY, "no database signal can be read, so nothing is changed: a human must look")
        return await close(incident, Outcome.ESCALATED)

    # contain -------------------------------------------------------------------------------------------
    contained = await _pause_jobs(incident, service, summary.detail)

    # investigate ---------------------------------------------------------------------------------------
    inspected, (deploy_info, errors) = await asyncio.gather(
        asyncio.gather(lock_evidence(providers), session_evidence(providers, long_running_s),
                       scan_evidence(providers, options.min_seq_scans or settings.db_min_seq_scans),
                       unused_index_evidence(providers), statement_evidence(providers)),
        asyncio.gather(deploy_history(providers, deploy_lookback_s), error_tracker(providers)))
    (locks_ev, locks), (sessions_ev, sessions), (scans_ev, scans), unused, (stmts_ev, stmts) = inspected
    deploys, releases = deploy_info
    incident.report.evidence.extend([locks_ev, sessions_ev, scans_ev, unused, stmts_ev, deploys, errors])
    for evidence in incident.report.evidence:
        incident.note(Phase.INVESTIGATE, f"evidence {evidence.source}", evidence.summary)

    # remediate -----------------------------------------------------------------------------------------
    fix_plan = _choose_fix(service, locks, sessions, scans, stmts, errors, long_running_s,
                           rollback_plan(service, releases, providers.clock.now(), deploy_lookback_s))
    fix: ActionRecord | None = None
    if fix_plan is None:
        incident.note(Phase.REMEDIATE, "no fix indicated",
                      "no lock held past the threshold, no index to add, no recent deploy")
    else:
        fix = await act(incident, Phase.REMEDIATE, fix_plan, evidence_confirmed=True, why=fix_plan.reason)

    if incident.report.mode is Mode.DRY_RUN:
        return await close(incident, Outcome.DRY_RUN)
    if fix is None or fix.state is not ActionState.APPLIED:
        return await close(incident, _without_fix(incident, fix))

    # recover -------------------------------------------------------------------------------------------
    return await _recover(incident, fix=fix, paused=contained if contained is not None and contained.applied else None,
                          verify=verify, probe=probe)


async def _recover(incident: RunningIncident, *, fix: ActionRecord | None, paused: ActionRecord | None,
                   verify: dict[str, Any], probe: dict[str, Any]) -> dict[str, Any]:
    """Verify the fix, then resume the jobs still paused (``paused``: a continuation passes only what its ledger
    says is still in effect, so jobs the dead run already resumed are not resumed twice)."""
    if fix is None:  # continued() only calls with an applied fix; never verify nothing
        incident.escalate(Phase.RECOVER, "no applied fix to verify")
        return await close(incident, Outcome.ESCALATED)
    verification = await _verify(incident, fix, verify, probe)
    incident.report.verification = verification
    if not verification.healthy:
        kept = "jobs stay paused" if paused is not None else "nothing is contained"
        incident.escalate(Phase.RECOVER, f"the fix did not hold ({verification.detail}); {kept}")
        return await close(incident, Outcome.ESCALATED)
    if paused is not None:
        undo = paused.plan.undo()
        if undo is not None:
            resumed = await act(incident, Phase.RECOVER, undo, evidence_confirmed=True,
                                why="the fix held: give the paused jobs their workers back")
            if not resumed.applied:
                # The database is healthy but the service is not whole: its background work is still stopped,
                # and only a person can now decide to resume it.
                incident.escalate(Phase.RECOVER, f"the database recovered but the paused jobs were not resumed "
                                  f"({resumed.error or '; '.join(resumed.reasons)}): resume them by hand "
                                  f"({undo.summary()})")
                return await close(incident, Outcome.ESCALATED)
    return await close(incident, Outcome.RECOVERED)


async def _pause_jobs(incident: RunningIncident, service: str, why: str) -> ActionRecord | None:
    jobs_lever = incident.providers.jobs
    if jobs_lever is None:
        incident.note(Phase.CONTAIN, "no jobs lever", f"{incident.providers.no_lever('jobs')}: background work "
                      "cannot be paused; continuing without containment")
        return None
    try:
        jobs = await jobs_lever.jobs(service)
    except Exception as exc:
        incident.note(Phase.CONTAIN, "job pools unreadable", f"{exc}; continuing without containment")
        return None
    plan: PauseJobs | None = pause_jobs_plan(service, jobs)
    if plan is None:
        incident.note(Phase.CONTAIN, "no heavy job running", ", ".join(f"{j.name}={j.workers}" for j in jobs) or
                      "no job pools")
        return None
    return await act(incident, Phase.CONTAIN, plan, evidence_confirmed=True, why=why)


def _choose_fix(service: str, locks: LockReport, sessions: SessionReport, scans: ScanReport, stmts: StatementReport,
                errors: Evidence, held_s: float, rollback: Plan | None) -> Plan | None:
    """A lock held too long first (it fails writes now), then a missing index, then a recent release."""
    terminate = terminate_plan(service, locks, sessions, held_s)
    if terminate is not None:
        return terminate
    # The SQL the slow work runs: pg_stat_statements when it exists, the sessions the inspector saw, the waiters,
    # and the error tracker's slow-query issues (their culprit is the statement).
    queries = [s.query for s in stmts.statements] + [s.query for s in sessions.sessions]
    queries += [w.blocked_query for w in locks.waits]
    queries += [str(item.get("culprit") or "") for item in errors.items]
    index = index_plan(service, scans, queries)
    if index is not None:
        return index
    return rollback


def _without_fix(incident: RunningIncident, fix: ActionRecord | None) -> Outcome:
    kept = "jobs stay paused" if incident.applied("pause_jobs") else "nothing contained"
    return without_fix(incident, fix, kept)


async def _verify(incident: RunningIncident, fix: ActionRecord, verify: dict[str, Any],
                  probe: dict[str, Any]) -> Verification:
    providers = incident.providers
    since = (fix.completed_at or providers.clock.now()) - timedelta(milliseconds=1)
    incident.note(Phase.RECOVER, "verifying", f"{verify['consecutive']} quiet samples {verify['interval_s']:g}s apart "
                  f"within {verify['deadline_s']:g}s, then {probe['requests']} probe requests")
    quiet = await verify_db_quiet(providers, since=since, **verify)
    incident.note(Phase.RECOVER, f"database {'quiet' if quiet.healthy else 'not quiet'}", quiet.detail)
    if not quiet.healthy:
        return quiet
    probed = await probe_check(providers, **probe)
    incident.report.evidence.append(Evidence(
        source="probe", summary=f"{probed.check}: {'healthy' if probed.healthy else 'NOT healthy'}; {probed.detail}",
        available=probed.healthy or not probed.detail.startswith("unknown")))
    incident.note(Phase.RECOVER, f"probe {'healthy' if probed.healthy else 'failed'}", probed.detail)
    return Verification(check=f"{quiet.check}; {probed.check}", healthy=probed.healthy, samples=quiet.samples,
                        required_consecutive=quiet.required_consecutive,
                        detail=f"{quiet.detail}; probe {probed.detail}")


