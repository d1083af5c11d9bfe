"""Runbook 6: Graceful Shutdown and Rolling Restarts.

When it fires
    By hand from the Prefect UI (to pick up rotated secrets, clear a leak), from an alert that asks for it
    (``RollingRestartRequested``), and every week on schedule as a **drill** (``drill=true``): the procedure is
    exercised while nothing is wrong, so that it is known to work when it is needed. kamkmserve's readiness probe
    always answers 200 and its SIGTERM handler exits without draining (docs/reference/kamkmserve.md §9), so the drain
    comes from the load balancer, never from the app.

What it does
    identify     Lists the instances and reads the load balancer. Every instance must be in service (healthy) and
                 the service within its SLO, read from each instance's own metrics page (each keeps its own
                 buffers, docs/reference/kamkmserve.md §2.4) and pooled: 5xx share < ``error_threshold_pct``, p95 <=
                 ``p95_threshold_ms``, and no 5xx from the load balancer itself. Degraded or breaching already ->
                 escalate, nothing touched. Unknown (request metrics dead, as in kamkmserve today; pages unreadable)
                 -> escalate, nothing touched: a restart that cannot be verified is not started. The hourly action
                 cap must have room for the whole restart (three actions per instance).
    contain      Nothing to contain: a rolling restart is planned work.
    investigate  Instance inventory (state, process uptime), the load balancer's settings, the batches.
    remediate    One approval for the whole restart, before anything is drained (a drill of a service listed in
                 REMEDIATE_DRILL_PREAPPROVED asks nobody). Then, under the service lock, one batch of
                 ``max_unavailable`` instances at a time:
                   drain    out of the load balancer; wait until its requests in flight have finished (bounded by
                            the deregistration delay)
                   restart  SIGTERM; wait until it runs a *new* process (its uptime, read from the app)
                   restore  back into the load balancer; wait until its health checks pass and it has served
                            ``min_records`` requests (a new process starts with empty metric buffers)
                   stable   ``stable_checks`` SLO readings in a row, ``check_interval_s`` apart
                 The SLO is read throughout, also while an instance is out: two breaching readings in a row stop the
                 run, drained instances are put back, and it escalates. An instance that does not come back within
                 ``restart_timeout_s``, or a service that does not settle within ``stable_timeout_s``, stops it the
                 same way.
    recover      After the last batch, every instance in service and ``stable_checks`` readings within the SLO.
    close        Timeline, report (per-batch timings) and postmortem draft; a drill also updates the drill record.

Blast radius and approval
    ``dry_run`` plans every drain, restart and restore and touches nothing. At most ``max_unavailable`` instances
    are out at a time, never all of them; a single instance is never restarted (that is an outage). Restarts are
    destructive: the up-front approval (or configuration) covers this run's restarts only; an unanswered approval
    is a deny. Drains and restores are reversible (``approve`` mode asks before each). Actions per service per hour,
    one active remediation per service and the kill switch apply. A whole restart counts as one operation under the
    hourly cap (REMEDIATE_MAX_ACTIONS_PER_SERVICE_PER_HOUR), each instance under its own cap
    (REMEDIATE_MAX_RESTART_INSTANCES_PER_HOUR); restores are never counted nor refused. It does not start without
    room for every instance.

Concurrency
    The batches hold Prefect's global concurrency limit ``remediate-<service>`` (waiting up to ``lock_timeout_s``).
    The approval is asked before the lock is taken, so an unanswered restart does not hold the service's slot; the
    fleet and the SLO are checked again once it is held.

Undo
    Drain: restore the instance (the run does it when it stops). Restart: none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from prefect.client.schemas.objects import State
from pydantic import Field

from remediation import composition, runtime
from remediation.figures import figure
from remediation.forms import RunOptions, RunSeverity, WindowRecords, runbook_flow
from remediation.incident import RunningIncident
from remediation.models import (
    ActionState,
    DrainInstance,
    Evidence,
    FindingStatus,
    Mode,
    Outcome,
    Phase,
    RestartInstance,
    RestoreInstance,
    Severity,
)
from remediation.orchestration.leases import current_flow_run_id
from remediation.orchestration.limits import ServiceBusy, service_lock
from remediation.run import finish, outcome_state, start_incident
from tasks.common.act import act
from tasks.rolling_restart.approval import approve_restarts
from tasks.rolling_restart.checks import Slo
from tasks.rolling_restart.identify import (
    Fleet,
    batches,
    budget_finding,
    drain_timeout,
    fleet_finding,
    inventory,
    read_fleet,
)
from tasks.rolling_restart.wait import SloWatch, wait_restarted, wait_stable, wait_warm

RUNBOOK = "rolling-restart"


@dataclass(frozen=True)
class _Job:
    """The run's resolved parameters (settings filled in), passed between phases."""

    service: str
    drill: bool
    slo: Slo
    max_unavailable: int
    stable_checks: int
    interval_s: float
    stable_timeout_s: float
    drain_timeout_s: float | None
    restart_timeout_s: float


@dataclass
class _Progress:
    restarted: list[str] = field(default_factory=list)
    timings: list[dict[str, Any]] = field(default_factory=list)


class RollingRestartOptions(RunOptions):
    """This runbook's parameters (the Custom run form)."""

    severity: RunSeverity = Severity.SEV3
    drill: bool = Field(False, title="Drill", description=(
        "A rehearsal while nothing is wrong (the weekly schedule sets it). A drill of a service listed in "
        "REMEDIATE_DRILL_PREAPPROVED restarts without asking; anything else waits for one approval first."))
    max_unavailable: int = Field(1, title="Instances out at a time", description=(
        "Batch size: this many instances are drained and restarted together (never all of them)."))
    error_threshold_pct: float = Field(1.0, title="5xx ceiling (%)", description=(
        "The SLO: the 5xx share of the recent requests (pooled over the instances, and per instance) and of the "
        "load balancer's own answers must stay below this."))
    p95_threshold_ms: float | None = Field(None, title="p95 ceiling (ms)", description=(
        "The SLO: p95 of the recent requests must stay at or under this. None: the REMEDIATE_LATENCY_P95_MS setting "
        "(default 500)."))
    window_records: WindowRecords = None
    min_records: int = Field(10, title="Minimum requests per instance", description=(
        "An instance that has served fewer requests than this (a restarted one) makes the reading unknown: the run "
        "waits for it, up to the stability timeout."))
    stable_checks: int = Field(3, title="Readings to be stable", description=(
        "SLO readings in a row that must pass after each batch (and at the end) before the run goes on."))
    check_interval_s: float | None = Field(None, title="Seconds between SLO readings", description=(
        "One reading of every instance per interval, also while an instance is out. None: the "
        "REMEDIATE_VERIFY_INTERVAL_S setting (default 15)."))
    stable_timeout_s: float | None = Field(None, title="Stability timeout (s)", description=(
        "A batch whose service is not stable again within this stops the run. None: the "
        "REMEDIATE_VERIFY_DEADLINE_S setting (default 600)."))
    drain_timeout_s: float | None = Field(None, title="Drain timeout (s)", description=(
        "How long a drained instance may take to finish its requests in flight. None: the load balancer's "
        "deregistration delay plus 30 s."))
    restart_timeout_s: float | None = Field(None, title="Restart timeout (s)", description=(
        "How long a restarted instance may take to run again and pass its health checks. None: the "
        "REMEDIATE_RESTART_TIMEOUT_S setting (default 300)."))


@runbook_flow(RollingRestartOptions, name=RUNBOOK,
              description="Rolling restart (or its drill): drain, restart, restore one batch at a time")
async def rolling_restart(options: RollingRestartOptions) -> State[dict[str, Any]]:
    providers = composition.current()
    settings = providers.settings
    service, drill, max_unavailable = options.service, options.drill, options.max_unavailable
    job = _Job(
        service=service, drill=drill,
        slo=Slo(error_pct=options.error_threshold_pct, p95_ms=options.p95_threshold_ms or settings.latency_p95_ms,
                min_records=options.min_records, window=options.window_records or settings.metrics_window_records),
        max_unavailable=max_unavailable, stable_checks=options.stable_checks,
        interval_s=options.check_interval_s or settings.verify_interval_s,
        stable_timeout_s=options.stable_timeout_s or settings.verify_deadline_s,
        drain_timeout_s=options.drain_timeout_s,
        restart_timeout_s=options.restart_timeout_s or settings.restart_timeout_s,
    )
    source = "drill" if drill else "manual" if options.alert_name == "manual" else "alert"
    adopted = options.incident_id or _adopted(providers, current_flow_run_id())
    incident = start_incident(RUNBOOK, options.model_copy(update={"incident_id": adopted}), source=source,
                              providers=providers)
    incident.note(Phase.IDENTIFY, "run started", f"mode {incident.report.mode.value}, "
                  f"{'drill' if drill else 'production'}, SLO: {job.slo.describe()}")
    watch = SloWatch(incident, service, job.slo, job.interval_s)

    # identify ------------------------------------------------------------------------------------------
    fleet = await read_fleet(providers, service)
    found = fleet_finding(fleet)
    baseline = await watch.read("baseline") if found.status is FindingStatus.OK else None
    budget = budget_finding(providers, service, len(fleet.instances))
    incident.add_findings([found, *([baseline.finding("slo_baseline", job.slo)] if baseline else []), budget])
    stop = _precondition(fleet, found.status, baseline.status if baseline else None,
                         baseline.detail if baseline else "")
    if not stop and budget.status is FindingStatus.BREACH and incident.report.mode is not Mode.DRY_RUN:
        stop = (f"the restart needs room for {figure(budget.observed)} instances and the hourly caps leave "
                f"{figure(budget.threshold)} ({budget.detail}): a cap would stop it half-way; nothing was restarted")
    if stop:
        incident.escalate(Phase.IDENTIFY, stop)
        return await _close(incident, Outcome.ESCALATED, job)

    # contain -------------------------------------------------------------------------------------------
    incident.note(Phase.CONTAIN, "nothing to contain", "a rolling restart is planned work")

    # investigate ---------------------------------------------------------------------------------------
    plan = batches(fleet.ids, max_unavailable)
    incident.report.evidence.append(await inventory(providers, service, fleet))
    incident.report.evidence.append(Evidence(
        source="plan", summary=f"{len(plan)} batch(es) of at most {len(plan[0])}: "
        f"{' then '.join('+'.join(batch) for batch in plan)}", items=tuple({"batch": b} for b in plan)))
    for evidence in incident.report.evidence:
        incident.note(Phase.INVESTIGATE, f"evidence {evidence.source}", evidence.summary)

    # remediate -----------------------------------------------------------------------------------------
    if incident.report.mode is Mode.DRY_RUN:
        for batch in plan:
            for instance in batch:
                for step in _steps(service, instance, drain_timeout(fleet.lb, job.drain_timeout_s), job):
                    await act(incident, Phase.REMEDIATE, step, evidence_confirmed=True, why="dry run: planned")
        return await _close(incident, Outcome.DRY_RUN, job)
    go = await approve_restarts(incident, plan, drill=drill, slo_text=job.slo.describe())
    if not go.proceed:
        if go.approval is not None:
            incident.escalate(Phase.REMEDIATE, f"the rolling restart was {go.why}; nothing was drained or restarted")
            return await _close(incident, Outcome.DENIED, job)
        incident.escalate(Phase.REMEDIATE, f"policy refuses the restarts ({go.why}); nothing was touched")
        return await _close(incident, Outcome.ESCALATED, job)
    try:
        async with service_lock(service, timeout_s=options.lock_timeout_s):
            # _close runs inside the lock, so the incident is closed before the next run of this service starts.
            return await _restart_all(incident, job, watch, plan)
    except ServiceBusy as busy:
        incident.escalate(Phase.REMEDIATE, f"{busy}; nothing was restarted")
        return await _close(incident, Outcome.ESCALATED, job)


def _adopted(providers: runtime.Providers, run_id: str | None) -> str | None:
    """The incident an earlier execution of this same flow run opened (a run resumed after our own restart runs
    again from the top): it is continued, so its pause keys and ledger are the same."""
    if run_id is None:
        return None
    existing = providers.store.incident_for_flow_run(run_id)
    return existing.id if existing is not None else None


def _precondition(fleet: Fleet, fleet_status: FindingStatus, slo: FindingStatus | None, slo_detail: str) -> str:
    """Why the restart must not start (empty: it may)."""
    if fleet_status is FindingStatus.UNKNOWN:
        return f"{fleet.error}; nothing was restarted"
    if fleet_status is FindingStatus.BREACH:
        down = ", ".join(f"{i.id} {i.state}" for i in fleet.not_in_service) or "no instances"
        return (f"not every instance is in service ({down}): taking another one out would cut capacity the service "
                "is already missing; nothing was restarted")
    if len(fleet.instances) < 2:
        return "only one instance: restarting it is an outage, not a rolling restart; nothing was restarted"
    if slo is FindingStatus.UNKNOWN:
        return f"the SLO cannot be read ({slo_detail}), so a restart could not be verified; nothing was restarted"
    if slo is FindingStatus.BREACH:
        return f"the service is already outside its SLO ({slo_detail}): not restarting during an incident"
    return ""


def _steps(service: str, instance: str, drain_s: float, job: _Job) -> list[Any]:
    return [DrainInstance(service=service, instance_id=instance, timeout_s=drain_s, reason="rolling restart"),
            RestartInstance(service=service, instance_id=instance, drained=True, reason="rolling restart"),
            RestoreInstance(service=service, instance_id=instance, timeout_s=job.restart_timeout_s,
                            reason="rolling restart")]


async def _restart_all(incident: RunningIncident, job: _Job, watch: SloWatch,
                       plan: list[list[str]]) -> State[dict[str, Any]]:
    providers = incident.providers
    fleet = await read_fleet(providers, job.service)  # again: the world may have changed while we waited
    stop = _precondition(fleet, fleet_finding(fleet).status, None, "")
    reading = None if stop else await watch.read("before the first batch")
    if reading is not None and reading.status is not FindingStatus.OK:
        stop = _precondition(fleet, FindingStatus.OK, reading.status, reading.detail)
    if stop:
        incident.escalate(Phase.REMEDIATE, f"changed while waiting for the go-ahead: {stop}")
        return await _close(incident, Outcome.ESCALATED, job)
    progress = _Progress()
    drain_s = drain_timeout(fleet.lb, job.drain_timeout_s)
    for number, batch in enumerate(plan, start=1):
        incident.note(Phase.REMEDIATE, f"batch {number} of {len(plan)}: {', '.join(batch)}")
        stopped = await _batch(incident, job, watch, batch, drain_s, progress)
        if stopped:
            _timings(incident, progress)
            left = [i for b in plan[number:] for i in b]
            incident.escalate(Phase.REMEDIATE, f"rolling restart stopped in batch {number} of {len(plan)}: {stopped}. "
                              f"Restarted: {', '.join(progress.restarted) or 'none'}; not restarted: "
                              f"{', '.join(left) or 'none'}")
            return await _close(incident, Outcome.ESCALATED, job)
    _timings(incident, progress)

    # recover -------------------------------------------------------------------------------------------
    incident.note(Phase.RECOVER, "verifying the whole fleet", watch.slo.describe())
    verification = await wait_stable(watch, job.stable_checks, job.stable_timeout_s, "final check")
    incident.report.verification = verification
    after = await read_fleet(providers, job.service)
    if verification.healthy and fleet_finding(after).status is FindingStatus.OK:
        incident.note(Phase.RECOVER, "every instance restarted, in service and stable", verification.detail)
        return await _close(incident, Outcome.RECOVERED, job)
    problem = verification.detail if not verification.healthy else fleet_finding(after).detail
    incident.escalate(Phase.RECOVER, f"every instance was restarted but the service is not stable: {problem}")
    return await _close(incident, Outcome.ESCALATED, job)


async def _batch(incident: RunningIncident, job: _Job, watch: SloWatch, batch: list[str], drain_s: float,
                 progress: _Progress) -> str:
    """Drain, restart, restore and settle one batch; returns why it stopped ('' when it went through)."""
    clock = incident.providers.clock
    started = clock.monotonic()
    timing: dict[str, Any] = {"instances": list(batch)}
    progress.timings.append(timing)
    drained: list[str] = []
    for instance in batch:
        plan = DrainInstance(service=job.service, instance_id=instance, timeout_s=drain_s, reason="rolling restart")
        record = await act(incident, Phase.REMEDIATE, plan, evidence_confirmed=True,
                           why=f"take {instance} out of the load balancer before restarting it")
        if record.applied or record.state in (ActionState.FAILED, ActionState.UNKNOWN):
            drained.append(instance)  # a drain that failed half-way (or whose answer was lost) may have deregistered
            # it: put it back too
        if not record.applied:
            return await _abort(incident, job, drained, f"{instance} could not be drained "
                                f"({record.error or '; '.join(record.reasons)})")
    timing["drain_s"] = round(clock.monotonic() - started, 3)
    await watch.due("with " + ", ".join(batch) + " out")
    if watch.breached and watch.last is not None:
        return await _abort(incident, job, drained, f"SLO breached with {', '.join(batch)} out of the load balancer: "
                            f"{watch.last.detail}")
    mark = clock.monotonic()
    asked: dict[str, float] = {}
    for instance in batch:
        asked[instance] = clock.monotonic()
        record = await act(incident, Phase.REMEDIATE,
                           RestartInstance(service=job.service, instance_id=instance, drained=True,
                                           reason="rolling restart"),
                           evidence_confirmed=True, why=f"{instance} is drained: nothing in flight")
        if not record.applied:
            return await _abort(incident, job, drained, f"{instance} was not restarted "
                                f"({record.error or '; '.join(record.reasons)})")
    for instance in batch:
        waited = await wait_restarted(watch, instance, asked[instance], job.restart_timeout_s)
        incident.note(Phase.REMEDIATE, f"{instance} {'is back' if waited.ok else 'did not come back'}", waited.detail)
        if not waited.ok:
            return await _abort(incident, job, drained, waited.detail)
        progress.restarted.append(instance)
    timing["restart_s"] = round(clock.monotonic() - mark, 3)
    mark = clock.monotonic()
    for instance in batch:
        record = await act(incident, Phase.REMEDIATE,
                           RestoreInstance(service=job.service, instance_id=instance,
                                           timeout_s=job.restart_timeout_s, reason="rolling restart"),
                           evidence_confirmed=True, why=f"{instance} runs a new process")
        if not record.applied:
            return await _abort(incident, job, drained, f"{instance} could not be put back "
                                f"({record.error or '; '.join(record.reasons)})")
        drained.remove(instance)
    timing["restore_s"] = round(clock.monotonic() - mark, 3)
    mark = clock.monotonic()
    for instance in batch:
        warmed = await wait_warm(watch, instance, job.stable_timeout_s)
        if not warmed.ok:
            return _suspect(warmed.detail, batch)
    timing["warm_s"] = round(clock.monotonic() - mark, 3)
    mark = clock.monotonic()
    settled = await wait_stable(watch, job.stable_checks, job.stable_timeout_s, f"after {', '.join(batch)}")
    incident.note(Phase.REMEDIATE, f"{'stable' if settled.healthy else 'NOT stable'} after {', '.join(batch)}",
                  settled.detail)
    timing["stable_s"] = round(clock.monotonic() - mark, 3)
    timing["total_s"] = round(clock.monotonic() - started, 3)
    if not settled.healthy:
        return _suspect(settled.detail, batch)
    return ""


def _suspect(detail: str, batch: list[str]) -> str:
    """A breach right after a batch came back names the batch as the likely cause."""
    return f"{detail}; {', '.join(batch)} just restarted: a likely cause" if "breach" in detail else detail


async def _abort(incident: RunningIncident, job: _Job, drained: list[str], why: str) -> str:
    """Put every instance this batch took out back into the load balancer; returns the reason, with what was done."""
    back: list[str] = []
    missing: list[str] = []
    for instance in drained:
        record = await act(incident, Phase.REMEDIATE,
                           RestoreInstance(service=job.service, instance_id=instance,
                                           timeout_s=job.restart_timeout_s, reason="rolling restart stopped"),
                           evidence_confirmed=True, why="the rolling restart stopped: put drained instances back")
        (back if record.applied else missing).append(instance)
    done = f"; put back: {', '.join(back) or 'none'}" + (f"; NOT put back: {', '.join(missing)}" if missing else "")
    return why + done


def _timings(incident: RunningIncident, progress: _Progress) -> None:
    total = sum(float(t.get("total_s", 0.0)) for t in progress.timings)
    incident.report.evidence.append(Evidence(
        source="batches", summary=f"{len(progress.timings)} batch(es), {len(progress.restarted)} instance(s) "
        f"restarted in {total:.1f}s", items=tuple(progress.timings)))


async def _close(incident: RunningIncident, outcome: Outcome, job: _Job) -> State[dict[str, Any]]:
    final = await finish(incident, outcome)
    if job.drill:
        from remediation.drills import record_report

        record_report(incident.providers.settings.home, final, trigger="flow")
    return outcome_state(final.summary_json())
