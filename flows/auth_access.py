"""Runbook 5: Authentication/Authorization issues.

When it fires
    An alert on denied admin access (Alertmanager ``AdminRoleCheckFailures``, ``AuthDenialsSpike``,
    ``HighForbiddenRate``, ``ClerkErrors``; a Sentry alert about Clerk or auth) or by hand from the Prefect UI.

What it does
    identify     ``confirm_samples`` readings ``sample_interval_s`` apart of two signals: the share of admin-area
                 requests answered 403 among the app's last ``window_records`` request records, and the
                 middleware's ``Admin role check failed`` / ``errored`` events against its claims-debug lines (one per
                 check) over the last ``event_window_s``; plus auth issues in the error tracker (informational).
                 Whatever they say, and before anything is switched off, a **read-only** probe (GET only; routes
                 that serve only mutating methods are skipped and listed) calls every admin route of
                 docs/reference/kamkmserve.md §6.2 signed out and as a signed-in **non-admin** test user where one
                 is configured. Each route answering either with anything but a refusal (401/403, a redirect to
                 sign in) is a ``breach`` of ``admin_route_authorization``, named with what it answered (the real
                 app: ``/api/admin/orders/export`` answers a signed-out caller with a 500 and the database's error).
                 Either signal confirmed in breach -> an incident (below). Otherwise nothing is changed: an open
                 admin route -> escalate with it (only a code change closes it; never "recovered"); the denial rate
                 unknown (the app as it is never emits request records) -> escalate with the security events as
                 evidence, a fix whose effect cannot be measured is not made by a robot; both normal and every
                 route refusing -> stand down.
    contain      Switches the affected admin features off at the edge (``admin-console`` for ``/admin``,
                 ``admin-api`` for ``/api/admin``; reversible) and posts a status update (a notification).
    investigate  In parallel: the identity configuration (keys present and of one instance, JWKS reachable, the
                 role claim where the app reads it, recent changes), the recorded access decisions against the
                 written admin policy (ABAC, with each user's real role from the identity provider), deploy history,
                 log excerpts. Admin routes with no check at all are evidence and a recommendation, never fixed here.
    remediate    The configuration fix the settings indicate (the role claim back to ``role``; the JWKS URL of the
                 publishable key's instance) as ``set_auth_setting``: DESTRUCTIVE (it changes who gets in), so the
                 run pauses for approval. A revoked or mismatched secret key needs a human. Nothing indicated ->
                 escalate.
    recover      The admin features are switched back on (with them off the edge answers and nothing can be
                 verified), then: the admin 403 share at or under the threshold for ``verify_consecutive`` readings
                 within ``verify_deadline_s`` and the middleware not refusing most checks since the fix, then an admin
                 test user opens ``/admin`` and ``/api/admin/orders``. Healthy -> the status update is resolved.
                 Otherwise the features go off again (containment kept) and the incident escalates.
    close        Timeline, report and postmortem draft as Prefect artifacts and in the store.

Blast radius and approval
    ``dry_run`` touches nothing and posts nothing. ``approve`` asks before every mutation. ``auto`` switches the
    features by policy; the setting change always asks unless configuration pre-approves ``set_auth_setting``. An
    unanswered approval is a deny: the setting stays, the admin features **stay off** (the broken checks are not
    put back in front of users) and the incident escalates; a human switches them on. Caps: actions per service per
    hour, one active remediation per service, kill switch. The probes use test users only and spend the app's
    request budget (100/min per IP): a 429 is "could not ask", never a verdict.

Concurrency
    One run per service at a time (Prefect global concurrency limit ``remediate-<service>``). A second run waits up
    to ``lock_timeout_s``, then escalates without acting.

Undo
    Features: switched back on (done by the run once the fix is in). Setting: its previous value (recorded as the
    action's undo; a human decides).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from prefect.client.schemas.objects import State
from pydantic import Field

from remediation import composition
from remediation.forms import ConfirmOptions, ContinueOptions, RunOptions, VerifyOptions, runbook_flow
from remediation.incident import RunningIncident
from remediation.models import (
    ActionRecord,
    Finding,
    FindingStatus,
    Mode,
    Outcome,
    Phase,
    SetFeatureFlag,
    Verification,
)
from remediation.providers.access_probe import AccessReport
from remediation.run import (
    close,
    confirm_readings,
    continued,
    locked,
    start_incident,
    verify_budget,
    without_fix,
)
from remediation.runbooks.auth_access import affected_features, disable_plans, fix_plans
from tasks.auth_access.identify import auth_issues_finding, sample_auth, verdict
from tasks.auth_access.investigate import (
    access_policy,
    admin_route_probe,
    identity_check,
    probe_evidence,
    probe_finding,
    recommendations,
    route_authorization_finding,
)
from tasks.auth_access.status import post_status, posted_status_id, update_status
from tasks.auth_access.verify import verify_admin_access
from tasks.common.act import act
from tasks.common.investigate import deploy_history, log_excerpts

RUNBOOK = "auth-access"
_DEGRADED = ("Some administrators cannot use the admin area of kamkmserve; we have switched it off while we fix "
             "the sign-in configuration. The shop and customer accounts are not affected.")


class AuthAccessOptions(RunOptions, ConfirmOptions, VerifyOptions, ContinueOptions):
    """This runbook's parameters (the Custom run form); identify and verification share the thresholds."""

    forbidden_pct: float = Field(50.0, title="Admin 403 share (%)", description=(
        "Share of the recent admin-area requests answered 403 above which admins are being refused; after the fix "
        "it must be at or below this. At baseline only customers poking at the admin area are refused."))
    min_admin_records: int = Field(10, title="Minimum admin requests", description=(
        "Fewer admin-area requests than this among the records read: the denial rate is unknown and the run "
        "escalates without changing anything."))
    refused_pct: float = Field(50.0, title="Refused admin checks (%)", description=(
        "Share of the middleware's admin checks ending in 'Admin role check failed' or 'errored' above which the "
        "checks are failing."))
    min_refused: int = Field(5, title="Minimum refused checks", description=(
        "Refused admin checks in the event window below which the logs show no incident, whatever the share."))
    window_records: int = Field(500, title="Records per reading", description=(
        "How many of the app's most recent request records a reading uses (the app keeps 500; admin traffic is a "
        "small part of them)."))
    event_window_s: float = Field(120.0, title="Event window (s)", description=(
        "How far back a reading counts the middleware's security events."))

    def thresholds(self) -> dict[str, Any]:
        """The keyword arguments identify's and verification's readings share."""
        return dict(forbidden_pct=self.forbidden_pct, min_admin_records=self.min_admin_records,
                    refused_pct=self.refused_pct, min_refused=self.min_refused, window_records=self.window_records)


@runbook_flow(AuthAccessOptions, name=RUNBOOK,
              description="Authentication/authorization issues: identify, contain, investigate, remediate, recover")
async def auth_access(options: AuthAccessOptions) -> State[dict[str, Any]]:
    incident = start_incident(RUNBOOK, options, providers=composition.current())
    incident.note(Phase.IDENTIFY, "run started", f"mode {incident.report.mode.value}, admin 403 threshold "
                  f"{options.forbidden_pct:g}%, refused checks threshold {options.refused_pct:g}%")
    if options.continue_at_recover:
        return await locked(incident, options.service, options.lock_timeout_s, lambda: continued(
            incident, lambda left: _recover(
                incident, options, switched_off=left.still_in_effect(Phase.CONTAIN),
                switch_off_again=[a for a in left.actions if a.phase is Phase.CONTAIN and a.applied],
                fixed_at=max(a.completed_at or a.started_at for a in left.actions if a.phase is Phase.REMEDIATE),
                status_id=posted_status_id(incident))))
    return await locked(incident, options.service, options.lock_timeout_s, lambda: _remediate(incident, options))


async def _remediate(incident: RunningIncident, options: AuthAccessOptions) -> dict[str, Any]:
    providers = incident.providers
    service, event_window_s = options.service, options.event_window_s
    # identify ------------------------------------------------------------------------------------------
    (signals, reading, lines), issues = await asyncio.gather(
        sample_auth(providers, **options.thresholds(), window_s=event_window_s,
                    samples=confirm_readings(options.confirm_samples, options.alert_name),
                    interval_s=options.sample_interval_s),
        auth_issues_finding(providers))
    denials, events = signals
    incident.add_findings([denials, events, issues])
    status = verdict(denials, events)
    # Whatever the signals say: the app's real hole (an admin route with no check) shows in none of them, and
    # containment would hide the app's checks behind the edge.
    signed_out, probe = await admin_route_probe(providers)
    holes = route_authorization_finding(signed_out, probe)
    incident.add_findings([probe_finding(probe), holes])
    if status is not FindingStatus.BREACH:
        return await _without_incident_signal(incident, status, events, holes, (signed_out, probe))

    # contain -------------------------------------------------------------------------------------------
    why = denials.detail if denials.status is FindingStatus.BREACH else events.detail
    history = await _flag_history(incident)
    features = affected_features(reading.denials, events.status is FindingStatus.BREACH, options.forbidden_pct)
    contained: list[ActionRecord] = []
    for off in disable_plans(service, features, history, why):
        contained.append(await act(incident, Phase.CONTAIN, off, evidence_confirmed=True, why=why))
    status_id = await post_status(incident, _DEGRADED)

    # investigate ---------------------------------------------------------------------------------------
    (identity, check), (policy, _), (deploys, _), logs = await asyncio.gather(
        identity_check(providers), access_policy(providers, lines, probe, signed_out),
        deploy_history(providers, 3600.0),
        log_excerpts(providers, providers.clock.now() - timedelta(seconds=event_window_s)))
    plans, by_hand = fix_plans(service, check)
    incident.report.evidence.extend([identity, probe_evidence(probe), probe_evidence(signed_out), policy, deploys,
                                     logs, recommendations((signed_out, probe), by_hand)])
    for evidence in incident.report.evidence:
        incident.note(Phase.INVESTIGATE, f"evidence {evidence.source}", evidence.summary)

    # remediate -----------------------------------------------------------------------------------------
    fixes: list[ActionRecord] = []
    if not plans:
        incident.note(Phase.REMEDIATE, "no configuration fix indicated",
                      "; ".join(by_hand) or (check.reason if not check.available else "the identity check is clean"))
    for plan in plans:
        fix = await act(incident, Phase.REMEDIATE, plan, evidence_confirmed=True, why=plan.reason)
        fixes.append(fix)
        if not fix.applied:
            break
    fixed_at = providers.clock.now()

    if incident.report.mode is Mode.DRY_RUN:
        return await close(incident, Outcome.DRY_RUN)
    if not fixes or not all(f.applied for f in fixes):
        outcome = _without_fix(incident, fixes[-1] if fixes else None, contained)
        await update_status(incident, Phase.REMEDIATE, status_id, "identified",
                            "The cause is known and engineers are on it; the admin area stays off until then.")
        return await close(incident, outcome)

    # recover -------------------------------------------------------------------------------------------
    applied = [r for r in contained if r.applied]
    return await _recover(incident, options, switched_off=applied, switch_off_again=applied, fixed_at=fixed_at,
                          status_id=status_id)


async def _recover(incident: RunningIncident, options: AuthAccessOptions, *, switched_off: list[ActionRecord],
                   switch_off_again: list[ActionRecord], fixed_at: datetime, status_id: str | None) -> dict[str, Any]:
    """Switch back on what is still off (``switched_off``), verify; if the fix did not hold, switch
    ``switch_off_again`` off again. A continuation passes its ledger's view: nothing is switched on twice."""
    verification = await _restore_and_verify(incident, options, switched_off, since=fixed_at)
    incident.report.verification = verification
    if verification.healthy:
        await update_status(incident, Phase.RECOVER, status_id, "resolved",
                            "The admin area is back and administrators can sign in again.")
        return await close(incident, Outcome.RECOVERED)
    for record in switch_off_again:
        await act(incident, Phase.RECOVER, record.plan, evidence_confirmed=True,
                  why="the fix did not hold: switch the admin features off again")
    incident.escalate(Phase.RECOVER, f"the fix did not hold ({verification.detail}); "
                      f"{'containment kept' if switch_off_again else 'nothing contained'}")
    await update_status(incident, Phase.RECOVER, status_id, "identified",
                        "The first fix did not restore admin access; engineers are working on it.")
    return await close(incident, Outcome.ESCALATED)


async def _without_incident_signal(incident: RunningIncident, status: FindingStatus, events: Finding,
                                   holes: Finding, probes: tuple[AccessReport, AccessReport]) -> dict[str, Any]:
    """Denial signals unknown or normal: nothing to contain or fix, and nothing is planned on missing evidence. An
    admin route that answers anyone is still reported, and escalated: only a change to the app's code closes it,
    and no lever here makes one, so the run never claims it recovered."""
    incident.report.evidence.extend([*(probe_evidence(p) for p in probes), recommendations(probes, [])])
    for evidence in incident.report.evidence:
        incident.note(Phase.INVESTIGATE, f"evidence {evidence.source}", evidence.summary)
    unknown = (f"the admin denial rate is unknown (security events: {events.status.value}, {events.detail})"
               if status is FindingStatus.UNKNOWN else "")
    if holes.status is FindingStatus.BREACH:
        incident.escalate(Phase.IDENTIFY, f"{holes.detail}. No lever here can add a check to the app's code, so "
                          "nothing is changed: a human must fix the handlers"
                          + (f"; also, {unknown}" if unknown else ""))
        return await close(incident, Outcome.ESCALATED)
    if unknown:
        incident.escalate(Phase.IDENTIFY, f"{unknown}, so nothing is changed: a human must look (admin route probe: "
                          f"{holes.status.value}, {holes.detail})")
        return await close(incident, Outcome.ESCALATED)
    incident.note(Phase.IDENTIFY, "not confirmed: standing down", f"admin route probe: {holes.detail}")
    return await close(incident, Outcome.STOOD_DOWN)


async def _flag_history(incident: RunningIncident) -> list[Any]:
    edge = incident.providers.edge
    if edge is None:
        incident.note(Phase.CONTAIN, "flag history unavailable", "no edge capability configured")
        return []
    try:
        return list(await edge.flag_history())
    except Exception as exc:
        incident.note(Phase.CONTAIN, "flag history unreadable", f"{exc}; assuming the admin features are on")
        return []


def _without_fix(incident: RunningIncident, fix: ActionRecord | None, contained: list[ActionRecord]) -> Outcome:
    kept = ("containment kept: the admin features stay off until a human switches them on"
            if any(r.applied for r in contained) else "nothing contained")
    return without_fix(incident, fix, kept)


async def _restore_and_verify(incident: RunningIncident, options: AuthAccessOptions, contained: list[ActionRecord], *,
                              since: datetime) -> Verification:
    """With the features off the edge answers and the app's checks are never exercised: switch them back on first."""
    for record in contained:
        if record.applied and isinstance(record.plan, SetFeatureFlag) and (undo := record.plan.undo()) is not None:
            restored = await act(incident, Phase.RECOVER, undo, evidence_confirmed=True,
                                 why="switch the admin feature back on to verify the fix under real traffic")
            if not restored.applied:
                return Verification(check="switch admin features back on", healthy=False,
                                    detail=f"{undo.summary()} was not applied: {'; '.join(restored.reasons)}")
    verify = verify_budget(incident.providers.settings, options)
    incident.note(Phase.RECOVER, "verifying", f"{verify['consecutive']} healthy readings {verify['interval_s']:g}s "
                  f"apart within {verify['deadline_s']:g}s, then the admin test user")
    verification = await verify_admin_access(incident.providers, since=since, **options.thresholds(), **verify)
    incident.note(Phase.RECOVER, f"verification {'healthy' if verification.healthy else 'failed'}",
                  verification.detail)
    return verification


