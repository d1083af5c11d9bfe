"""What every runbook does the same way: open its incident, hold the service's lock, close with a report.

The runbooks differ in what they read and change; how a run starts, serialises per service and ends is one
policy, kept here so that it cannot drift between them. It is library code: the flows call it, and it imports no
runbook, task or entry point (an import-linter contract in pyproject.toml).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from prefect.client.schemas.objects import State
from prefect.states import Completed

from remediation import composition, gate, runtime
from remediation.forms import RunOptions, VerifyOptions
from remediation.incident import RunningIncident
from remediation.models import (
    OUTCOME_STATE_NAMES,
    ActionRecord,
    ActionState,
    Alert,
    IncidentReport,
    Outcome,
    Phase,
)
from remediation.orchestration.leases import current_flow_run_id, hold_current_run
from remediation.orchestration.limits import ServiceBusy, service_lock
from remediation.rate_limit_finding import close_rate_limit_finding
from remediation.run_report import publish_report, render_postmortem
from remediation.settings import Settings
from remediation.takeover import Next, decide, in_effect
from remediation.unread_env import unread_variables


def confirm_readings(confirm_samples: int | None, alert_name: str) -> int:
    """Readings that must agree before acting. An alert rule already required the breach to persist, so one
    reading of our own confirms it; a manual run has no such history and takes two."""
    return confirm_samples or (2 if alert_name == "manual" else 1)


def verify_budget(settings: Settings, options: VerifyOptions) -> dict[str, Any]:
    """The recover phase's ``consecutive``/``interval_s``/``deadline_s``: the run's values, else the settings'."""
    return dict(consecutive=options.verify_consecutive or settings.verify_consecutive,
                interval_s=options.verify_interval_s or settings.verify_interval_s,
                deadline_s=options.verify_deadline_s or settings.verify_deadline_s)


def start_incident(runbook: str, run: RunOptions, *, source: str | None = None,
                   providers: runtime.Providers | None = None) -> RunningIncident:
    """The run's incident: the one intake opened (``run.incident_id``) or a new one, tied to this flow run.

    The run's lease is taken here too (a no-op when the warm executor already holds it): whatever process executes
    this run, its death is then noticed by the next reconcile (remediation.orchestration.leases). A run whose settings
    come from its own environment notes in its timeline each ``REMEDIATE_*`` variable that nothing reads
    (remediation.unread_env): a misspelt one leaves a default in force, and the report is where a responder looks."""
    from_environment = providers is None and runtime.bound() is None
    bundle = providers or composition.current()
    # Leased before the incident is adopted, so that a second start of the same incident that reads this run as
    # the owner finds its lease held and stops (remediation.incident.refuse_duplicate).
    hold_current_run(bundle)
    incident = RunningIncident(
        bundle, runbook=runbook, mode=run.mode or bundle.settings.mode, incident_id=run.incident_id,
        alert=Alert(name=run.alert_name, service=run.service, severity=run.severity,
                    source=source or ("manual" if run.alert_name == "manual" else "alert")),
        flow_run_id=current_flow_run_id(), approval_timeout_s=run.approval_timeout_s,
    )
    if from_environment:  # a worker's or served child's run: no one saw the CLI's warning about its environment
        for unread in unread_variables(bundle.settings):
            incident.note(Phase.IDENTIFY, "configuration warning", unread.describe())
    return incident


def outcome_state(summary: dict[str, Any]) -> State[dict[str, Any]]:
    """The run's final state, named by its outcome, holding the report's summary as the run's result.

    Always of type Completed: a Failed final state would make Prefect raise on every caller that awaits the runbook
    (the report would be lost to them) and count the run as a crash; the name carries the outcome instead."""
    outcome = str(summary.get("outcome", ""))
    known = {o.value: o for o in Outcome}
    name = OUTCOME_STATE_NAMES[known[outcome]] if outcome in known else "Completed"
    escalation = summary.get("escalation")
    return Completed(data=summary, name=name, message=str(escalation)[:500] if escalation else f"outcome {outcome}")


async def locked(incident: RunningIncident, service: str, lock_timeout_s: float | None,
                 body: Callable[[], Awaitable[dict[str, Any]]]) -> State[dict[str, Any]]:
    """Run ``body`` holding the service's remediation slot. The body closes the incident inside the lock, so it
    is closed before the next run of this service starts; a slot that stays taken escalates without acting.
    The run's final state names the outcome (:func:`outcome_state`)."""
    try:
        async with service_lock(service, timeout_s=lock_timeout_s):
            return outcome_state(await body())
    except ServiceBusy as busy:
        incident.escalate(Phase.IDENTIFY, f"{busy}; not remediating the same service twice at once")
        return outcome_state(await close(incident, Outcome.ESCALATED))


async def finish(incident: RunningIncident, outcome: Outcome) -> IncidentReport:
    """Outcome, postmortem draft, the store's final record and the Prefect artifacts."""
    close_rate_limit_finding(incident)
    outcome = incident.escalate_unknown_outcomes(outcome)
    report = incident.report
    report.outcome = outcome
    report.postmortem = render_postmortem(report)
    final = incident.finish(outcome)
    await publish_report(final)
    return final


async def close(incident: RunningIncident, outcome: Outcome) -> dict[str, Any]:
    """:func:`finish`, returning the report's JSON summary (every runbook's return value)."""
    return (await finish(incident, outcome)).summary_json()


def not_applied(incident: RunningIncident, phase: Phase, record: ActionRecord, consequence: str) -> Outcome:
    """Escalate for a step that was planned but did not happen: DENIED when a person said no (or nobody
    answered), ESCALATED when policy or the platform refused. ``consequence`` says what that leaves in place."""
    if record.approval is not None and not record.approval.granted:
        incident.escalate(phase, f"{record.plan.summary()} was not approved ({record.approval.answer.value}); "
                          f"{consequence}")
        return Outcome.DENIED
    if record.state is ActionState.UNKNOWN:  # the escalation names its undo (RunningIncident.escalate)
        incident.escalate(phase, f"{record.plan.summary()} may or may not have taken effect; {consequence}")
        return Outcome.ESCALATED
    incident.escalate(phase, f"{record.plan.summary()} was not applied "
                      f"({record.error or '; '.join(record.reasons)}); {consequence}")
    return Outcome.ESCALATED


def without_fix(incident: RunningIncident, fix: ActionRecord | None, kept: str) -> Outcome:
    """Escalate a run whose remediate phase changed nothing: no fix was indicated, or it was not applied
    (:func:`not_applied`). ``kept`` says what containment stays in place."""
    if fix is None:
        incident.escalate(Phase.REMEDIATE, f"no automatic fix is indicated; {kept}")
        return Outcome.ESCALATED
    return not_applied(incident, Phase.REMEDIATE, fix, kept)


@dataclass(frozen=True)
class Resumed:
    """What a dead run left, as a continuation run reads it from the ledger (``remediation.takeover``)."""

    actions: tuple[ActionRecord, ...]

    def first_applied(self, phase: Phase) -> ActionRecord | None:
        """The first change the dead run applied in ``phase`` (what to contain again if the fix fails)."""
        return next((a for a in self.actions if a.phase is phase and a.applied), None)

    def still_in_effect(self, phase: Phase) -> list[ActionRecord]:
        """``phase``'s changes still in place: applied and not undone since (so never undone twice)."""
        return [a for a in in_effect(self.actions) if a.phase is phase]


async def resume_at_recover(incident: RunningIncident) -> Resumed:
    """Adopt the dead run's ledger and timeline into this run's report, and say on the timeline what happens now.

    Called instead of identify/contain/remediate when the reconciler started this run as a continuation: the report
    this run closes with then holds every action of the incident, and the hourly cap sees its undoes as undoes. A
    step the dead run left half-done is first read back from the platform (``gate.settle_after_crash``)."""
    store = incident.providers.store
    actions = tuple([await gate.settle_after_crash(row.as_record(), incident.providers)
                     for row in store.actions(incident.id)])
    incident.report.actions[:0] = list(actions)
    incident.note(Phase.RECOVER, "continuing at recover",
                  f"the previous run died after its fix; {len(actions)} action(s) from its ledger, "
                  f"{sum(1 for a in actions if a.applied)} applied; nothing before recover runs again")
    incident.report.timeline = store.timeline(incident.id)
    return Resumed(actions)


async def continued(incident: RunningIncident, recover: Callable[[Resumed], Awaitable[dict[str, Any]]]
                    ) -> dict[str, Any]:
    """A continuation's body: adopt the ledger, check again that it allows continuing (a run started by hand with
    Continue at recover gets no free pass), then ``recover``; otherwise escalate naming what is in effect."""
    resumed = await resume_at_recover(incident)
    verdict = decide(incident.report.runbook, incident.report.mode, resumed.actions)
    if verdict.next is not Next.CONTINUE:
        effect = f"; still in effect: {'; '.join(verdict.in_effect)}" if verdict.in_effect else ""
        incident.escalate(Phase.RECOVER, f"cannot continue at recover: {verdict.reason}{effect}")
        return await close(incident, Outcome.ESCALATED)
    return await recover(resumed)
