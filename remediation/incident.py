"""A runbook run's working state: its report, its timeline, and the plan → policy → approval → gate path.

Every runbook acts through ``RunningIncident.act`` so that no mutation can skip policy, the approval pause,
the ledger or the timeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from remediation import approvers, figures, gate, levers, policy
from remediation.approval_text import approval_description
from remediation.ballot import StepBallot
from remediation.models import (
    ActionRecord,
    ActionState,
    Alert,
    Approval,
    Finding,
    FindingStatus,
    IncidentReport,
    Mode,
    Outcome,
    Phase,
    Plan,
    TimelineEntry,
    Verdict,
    new_id,
    plan_digest,
    undoes,
)
from remediation.notify.ladder import ack_s, climb, pages_on_call, rung_event
from remediation.notify.notifier import Delivery, EventKind, IncidentEvent, Tier, failures
from remediation.notify.told import escalation_notice
from remediation.outcomes import unknown_outcomes_text
from remediation.providers.approvals import ApprovalRequest
from remediation.providers.clock import RealClock
from remediation.providers.metrics import app_reads
from remediation.runtime import Providers
from remediation.store import PendingStep, Store
from remediation.store.flow_runs import LeaseState
from remediation.store.rows import IncidentSummary

log = logging.getLogger("remediation.incident")


def _run_logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """The Prefect run logger inside a run (so lines reach the UI), the module logger outside one."""
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return log


class DuplicateRun(RuntimeError):
    """This run was started for an incident that another live run already handles, or that is closed: it does
    nothing (the run ends Failed with this message; the incident is not touched)."""


def refuse_duplicate(existing: IncidentSummary, flow_run_id: str | None, store: Store, now: datetime) -> None:
    """At most one run acts per incident, whatever started it. Intake's starts are idempotent by the incident; a
    Prefect event trigger is not (its idempotency key is per automation invocation, so a duplicated
    ``remediation.alert.fired`` event creates a second run): the second run finds the first holding its lease, or
    the incident closed, and stops before it notes or changes anything."""
    if not existing.is_open:
        raise DuplicateRun(f"incident {existing.id} is closed ({existing.outcome.value if existing.outcome else '?'})"
                           ": this run does nothing")
    owner = existing.flow_run_id
    if not owner or owner == flow_run_id:
        return
    record = store.flow_runs([owner]).get(owner)
    if record is not None and record.lease(now) is LeaseState.HELD:
        raise DuplicateRun(f"incident {existing.id} is handled by run {owner} (lease held by {record.holder}): "
                           "this duplicate start does nothing")


class RunningIncident:
    def __init__(self, providers: Providers, *, runbook: str, alert: Alert, mode: Mode,
                 incident_id: str | None = None, flow_run_id: str | None = None,
                 approval_timeout_s: float | None = None) -> None:
        self.providers = providers
        self.approval_timeout_s = approval_timeout_s or providers.settings.approval_timeout_s
        # The app client outlives runs; its counters now are this run's zero for the rate-limit finding.
        self.app_reads_at_start = app_reads(providers.metrics)
        self.report = IncidentReport(
            incident_id=incident_id or new_id("inc"),
            runbook=runbook,
            service=alert.service,
            mode=mode,
            severity=alert.severity,
            outcome=Outcome.ESCALATED,  # until proven otherwise
            alert=alert,
            flow_run_id=flow_run_id,
            started_at=providers.clock.now(),
        )
        existing = providers.store.get_incident(self.id) if incident_id else None
        if existing is None:
            providers.store.open_incident(
                incident_id=self.id, runbook=runbook, service=alert.service, severity=alert.severity, mode=mode,
                alert=alert, flow_run_id=flow_run_id, opened_at=providers.clock.now(),
            )
            return
        refuse_duplicate(existing, flow_run_id, providers.store, providers.clock.now())
        # Opened by intake from an alert (or handed over by the reconciler): this run adopts it, unless another
        # run adopted it since it was read (two starts of one incident at once): then that one decides.
        if (flow_run_id and existing.flow_run_id != flow_run_id
                and not providers.store.adopt_incident(self.id, flow_run_id, previous=existing.flow_run_id)):
            now_owned = providers.store.get_incident(self.id)
            if now_owned is None:
                raise DuplicateRun(f"incident {self.id} vanished while this run adopted it: this run does nothing")
            if now_owned.flow_run_id == flow_run_id:
                return  # intake recorded this very run meanwhile
            refuse_duplicate(now_owned, flow_run_id, providers.store, providers.clock.now())
            raise DuplicateRun(f"incident {self.id} was adopted by run {now_owned.flow_run_id} while this run "
                               "adopted it: this duplicate start does nothing")

    @property
    def id(self) -> str:
        return self.report.incident_id

    def note(self, phase: Phase, event: str, detail: str = "") -> None:
        entry = TimelineEntry(at=self.providers.clock.now(), phase=phase, event=event, detail=detail)
        self.report.timeline.append(entry)
        self.providers.store.add_timeline(self.id, entry)
        _run_logger().info("[%s] %s %s", phase.value, event, detail)

    def add_findings(self, findings: list[Finding]) -> None:
        self.report.findings.extend(findings)
        for f in findings:
            self.note(Phase.IDENTIFY, f"finding {f.check}: {f.status.value}",
                      f"observed {figures.observed(f)} {figures.against(f)}; {f.detail}".strip())

    def policy_context(self, evidence_confirmed: bool, lever_problem: str | None = None,
                       plan: Plan | None = None) -> policy.PolicyContext:
        settings = self.providers.settings
        store = self.providers.store
        since = self.providers.clock.now()
        return policy.PolicyContext(
            mode=self.report.mode,
            preapproved_kinds=frozenset(settings.preapproved),
            kill_switch=settings.kill_switch,
            other_active_remediations=self._earlier_open_incidents(),
            actions_last_hour=store.changes_applied_since(self.report.service, since - timedelta(hours=1)),
            max_actions_per_hour=settings.max_actions_per_service_per_hour,
            max_maintenance_prefixes=settings.max_maintenance_prefixes,
            max_replicas=settings.max_replicas,
            max_scale_factor=settings.max_scale_factor,
            never_block=tuple(settings.never_block_cidrs),
            max_block_ttl_s=settings.max_block_ttl_s,
            evidence_confirmed=evidence_confirmed,
            lever_problem=lever_problem,
            restores_own_change=plan is not None and any(undoes(plan, a.plan) for a in self.report.actions
                                                         if a.applied),
            continues_counted_operation=plan is not None and policy.continues_operation(
                plan, [a.plan for a in self.report.actions if a.applied]),
            restart_instances_last_hour=store.instances_restarted_since(self.report.service,
                                                                        since - timedelta(hours=1)),
            max_restart_instances_per_hour=settings.max_restart_instances_per_hour,
        )

    def _earlier_open_incidents(self) -> int:
        """Open incidents of this service opened before this one: they own the service until they close.

        Later ones are waiting (on the per-service lock, or for intake to start them) and must not block the
        run that is acting; counting them would deny the owner's own recovery steps."""
        store = self.providers.store
        mine = store.get_incident(self.id)
        if mine is None:
            return 0
        others = store.active_incidents(self.report.service, exclude=self.id)
        return sum(1 for other in others if other.opened_at < mine.opened_at)

    async def act(self, phase: Phase, plan: Plan, *, evidence_confirmed: bool, why: str = "") -> ActionRecord:
        """Evaluate, ask if needed, apply through the gate, and record every step."""
        # A dry run applies nothing: it only needs to know whether a lever exists, not ask it anything.
        problem = (levers.lever_problem(plan, self.providers) if self.report.mode is Mode.DRY_RUN
                   else await levers.preflight(plan, self.providers))
        decision = policy.evaluate(plan, self.policy_context(evidence_confirmed, problem, plan))
        record = ActionRecord(id=self._action_id(plan), phase=phase, plan=plan, decision=decision.verdict,
                              reasons=decision.reasons, started_at=self.providers.clock.now())
        self.note(phase, f"plan {plan.summary()} ({plan.risk.value})",
                  f"decision {decision.verdict.value}: {'; '.join(decision.reasons)}")
        if decision.verdict is Verdict.NEEDS_APPROVAL:
            approval = await self._ask(phase, plan, decision.reasons, why, action_id=record.id)
            record = record.model_copy(update={"approval": approval})
        if gate.permitted(record):
            record = await gate.apply(record, self.id, self.providers)
            self.note(phase, f"{record.state.value} {plan.summary()}", record.error or "")
        else:
            self.providers.store.record_action(self.id, record)
            self.note(phase, f"not applied: {plan.summary()}", "; ".join(record.reasons))
        self.report.actions.append(record)
        await self._publish(phase, EventKind.ACTION, plan.summary(), state=record.state, risk=plan.risk.value,
                            detail=record.error or ("; ".join(record.reasons) if not record.applied else ""))
        return record

    def _action_id(self, plan: Plan) -> str:
        """A new id, or the id this run asked about before a restart: the answer given then names it."""
        digest = plan_digest(plan)
        for step in self.providers.store.pending_steps(self.report.flow_run_id) if self.report.flow_run_id else ():
            if step.incident_id == self.id and step.step.endswith(f"/{digest[:16]}"):
                return step.action_id
        return new_id("act")

    def evidence(self) -> list[str]:
        """The figures behind the step: every finding that breached or could not be read, with its threshold."""
        lines = []
        for f in self.report.findings:
            if f.status in (FindingStatus.BREACH, FindingStatus.UNKNOWN):
                against = f" (threshold {_figure(f.threshold)} {f.unit})" if f.threshold is not None else ""
                observed = "unknown" if f.observed is None else f"{_figure(f.observed)} {f.unit}"
                lines.append(f"{f.check}: {f.status.value}, {observed}{against}"[:300])
        return lines[-8:]

    async def _ask(self, phase: Phase, plan: Plan, reasons: tuple[str, ...], why: str,
                   action_id: str | None = None) -> Approval:
        settings = self.providers.settings
        clock = self.providers.clock
        undo = plan.undo()
        action_id = action_id or self._action_id(plan)
        needed = approvers.needed(settings.min_approvers, self.report.severity.value, plan.risk.value)
        now = clock.now()
        step = PendingStep(
            action_id=action_id, incident_id=self.id, flow_run_id=self.report.flow_run_id,
            step=approvers.step_binding(self.id, action_id, plan_digest(plan)), runbook=self.report.runbook,
            service=plan.service, severity=self.report.severity.value, phase=phase.value, summary=plan.summary(),
            risk=plan.risk.value, why=why or plan.reason, evidence=tuple(self.evidence()),
            undo=undo.summary() if undo else "none", statement=getattr(plan, "statement", None), needed=needed,
            requested_at=now, deadline=now + timedelta(seconds=self.approval_timeout_s))
        description = approval_description(step, reasons, settings, self.approval_timeout_s)
        # Told before the "waiting" note: watchers (the demo) take that note as the last word before the pause.
        await self._publish(phase, EventKind.APPROVAL_REQUESTED, plan.summary(), risk=plan.risk.value,
                            detail=f"Why: {step.why}. Undo: {step.undo}.", timeout_s=self.approval_timeout_s,
                            step=step.step, needed=needed)
        self.providers.store.open_pending(step)
        self.note(phase, f"waiting for approval of {plan.summary()}",
                  f"timeout {self.approval_timeout_s:g}s; {needed} approver{'s' if needed > 1 else ''} needed")

        def on_answer(answer: Approval) -> None:
            self.providers.store.record_approval(self.id, answer, action_id=action_id)
            self.note(phase, f"approval {answer.answer.value} by {answer.approver or '(nobody)'}", answer.reason)

        ballot = StepBallot(step, settings=settings, store=self.providers.store, clock=clock, on_answer=on_answer,
                            proof_clock=RealClock())  # codes and Slack stamps are real time, even on virtual time
        ladder = self._start_ladder(phase, plan.summary())
        try:
            final = await self.providers.approvals.request(ApprovalRequest(
                incident_id=self.id, title=plan.summary(), description=description,
                timeout_s=self.approval_timeout_s, step=step.step), ballot)
        finally:
            if ladder is not None:  # someone answered (or the wait ended): nobody else needs paging for it
                ladder.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await ladder
        self.providers.store.close_pending(action_id)
        await self._publish(phase, EventKind.APPROVAL_ANSWERED, plan.summary(), answer=final.answer,
                            approver=final.approver, detail=final.reason)
        return final

    def applied(self, kind: str) -> list[ActionRecord]:
        return [a for a in self.report.actions if a.kind == kind and a.state is ActionState.APPLIED]

    def unknown(self, kind: str | None = None) -> list[ActionRecord]:
        """Actions whose answer was lost and whose read-back could not tell: they may be in effect."""
        return [a for a in self.report.actions if a.state is ActionState.UNKNOWN and kind in (None, a.kind)]

    def escalate_unknown_outcomes(self, outcome: Outcome) -> Outcome:
        """Before closing: an action left ``unknown`` needs a person, whatever else happened, so a run that would
        close recovered (or stood down) escalates instead, and every escalation names each such action's undo."""
        escalation = self.report.escalation or ""
        if all(action.id in escalation for action in self.unknown()):
            return outcome
        self.escalate(Phase.CLOSE, escalation or "the run finished with actions whose outcome is unknown")
        return outcome if outcome in (Outcome.ESCALATED, Outcome.DENIED) else Outcome.ESCALATED

    def escalate(self, phase: Phase, reason: str) -> None:
        """Tell the channels first, so that the report says who was really paged, not who should have been.

        Actions left ``unknown`` are named in every escalation with their undo: a person must settle them."""
        if unknown := self.unknown():
            reason = f"{reason}; {unknown_outcomes_text(unknown)}"
        sev = self.report.severity
        deliveries = self._publish_blocking(phase, EventKind.ESCALATED, reason)
        ack = ack_s(self.providers.settings, sev)
        within = f"{ack / 60:g} min" if ack >= 60 else f"{ack:g}s"
        told = escalation_notice(deliveries, ack=f"{sev.value.upper().replace('SEV', 'SEV-')}, ack within {within}",
                                 dry_run=self.report.mode is Mode.DRY_RUN)
        self.report.escalation = f"{reason}. {told}"
        self.note(phase, "escalated", self.report.escalation)

    def finish(self, outcome: Outcome) -> IncidentReport:
        self.report.outcome = outcome
        self.report.finished_at = self.providers.clock.now()
        self.note(Phase.CLOSE, f"outcome {outcome.value}")
        # Before the report is stored, so a failed notification is part of it.
        self._publish_blocking(Phase.CLOSE, EventKind.FINISHED, self._closing_summary(), outcome=outcome,
                               actions_applied=sum(1 for a in self.report.actions if a.applied))
        self.providers.store.close_incident(self.id, self.report)
        return self.report

    # -- notifications (remediation.notify): never raised into the runbook, failures go on the timeline --------

    def run_url(self) -> str | None:
        """The Prefect UI's page of this run (its Resume form is where a person approves)."""
        if not self.report.flow_run_id:
            return None
        base = self.providers.settings.prefect_ui_url
        if not base:
            from prefect.settings import get_current_settings

            base = get_current_settings().ui_url
        return f"{base.rstrip('/')}/runs/flow-run/{self.report.flow_run_id}" if base else None

    def _event(self, phase: Phase, kind: EventKind, summary: str, **fields: object) -> IncidentEvent:
        r = self.report
        return IncidentEvent.model_validate({
            "kind": kind, "incident_id": self.id, "runbook": r.runbook, "service": r.service, "severity": r.severity,
            "phase": phase, "summary": summary, "at": self.providers.clock.now(), "flow_run_id": r.flow_run_id,
            "run_url": self.run_url(), **fields})

    def _muted(self) -> bool:
        # A dry run is a shadow: it touches nothing outside, people included.
        return self.providers.notifier is None or self.report.mode is Mode.DRY_RUN

    async def _publish(self, phase: Phase, kind: EventKind, summary: str, **fields: object) -> None:
        notifier = self.providers.notifier
        if notifier is None or self._muted():
            return
        try:
            deliveries = await notifier.publish(self._event(phase, kind, summary, **fields))
        except Exception as exc:  # the fan-out never raises; this guards against a broken custom one
            deliveries = [Delivery(channel="notify", ok=False, error=f"{type(exc).__name__}")]
        self._record_failures(phase, deliveries)

    def _publish_blocking(self, phase: Phase, kind: EventKind, summary: str, **fields: object) -> list[Delivery] | None:
        """What each channel made of the event; None when nothing was sent (no channel, or a dry run)."""
        notifier = self.providers.notifier
        if notifier is None or self._muted():
            return None
        try:
            deliveries = notifier.publish_blocking(self._event(phase, kind, summary, **fields))
        except Exception as exc:
            deliveries = [Delivery(channel="notify", ok=False, error=f"{type(exc).__name__}")]
        self._record_failures(phase, deliveries)
        return deliveries

    def _record_failures(self, phase: Phase, deliveries: list[Delivery]) -> None:
        for failed in failures(deliveries):
            self.note(phase, f"notification failed: {failed.channel}", failed.error)

    def _start_ladder(self, phase: Phase, summary: str) -> asyncio.Task[list[Tier]] | None:
        """Page the next on-call tier (SEV-3/4: remind Slack) each time the ack time passes without an answer."""
        if self._muted():
            return None
        severity = self.report.severity

        async def page(tier: Tier, why: str) -> None:
            self.note(phase, rung_event(tier, severity), why)
            await self._publish(phase, EventKind.PAGE, f"approval of {summary} is waiting", tier=tier, detail=why)

        ack = ack_s(self.providers.settings, severity)
        return asyncio.create_task(climb(page, ack=ack, clock=self.providers.clock,
                                         timeout_s=self.approval_timeout_s, paging=pages_on_call(severity)))

    def _closing_summary(self) -> str:
        r = self.report
        if r.escalation:
            return r.escalation
        if r.verification is not None:
            return f"{r.verification.check}: {'healthy' if r.verification.healthy else 'not healthy'}"
        applied = [a.plan.summary() for a in r.actions if a.applied]
        return f"applied: {', '.join(applied)}" if applied else "no action taken"


def _figure(value: float | str) -> str:
    return f"{value:g}" if isinstance(value, float | int) else str(value)
