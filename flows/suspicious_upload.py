"""Runbook 4: Suspicious Upload / Malware.

When it fires
    An alert on rejected or infected uploads (Alertmanager ``SuspiciousUploads``, ``MalwareUploadBurst``,
    ``UploadValidationFailures``; a Sentry alert that mentions uploads or malware), or by hand from the Prefect UI.

What it does
    identify     Over the last ``window_s``: the ``upload.*`` rows of ``kamkmserve_audit_log`` (malware rejections
                 are ``upload.validation_failed`` rows whose ``metadata`` error reads ``Malware scan failed: …``),
                 grouped by client: the right-most x-forwarded-for hop outside our trusted proxies, never an address
                 in the never-block ranges, never anyone a spoofed or malformed chain names; the app's ``Upload:
                 validation failed`` lines with a malware reason; the ``upload_*`` samples of the metrics page; its
                 ``Failed to write audit log`` lines; and the 5xx share (informational). ``scan-error`` (the scanner
                 failing closed) is counted apart, not as malware. A breach is ``min_detections`` malware rejections
                 (in the audit rows or the logs), or a rejection burst on the metrics page when nothing readable says
                 why. No malware -> stand down. A missing audit table is a finding that says so (and that the app's
                 audit writes are failing); the run goes on with the other signals. Every signal dead -> nothing is
                 changed, escalate.
    contain      A block at the edge for every client with ``min_detections`` or more malware uploads, for
                 ``block_ttl_s`` (and of its users, if the rows named any: the uploads route records none). More
                 offending clients than ``max_blocks`` is not one attack: nobody is blocked, a human decides. Then the
                 upload allowlist loses the extensions and MIME types the quarantined samples came in as. Both are
                 reversible.
    investigate  The actors' audit rows (time span and rate, user agents, every event, the metadata errors, the
                 distinct chains) and the quarantined samples, re-scanned by our antivirus, preserved in the report
                 with their sha256; the malware log lines; the blocks in force.
    remediate    The antivirus reloads its signatures (clamd ``RELOAD``). No antivirus lever: flagged for an external
                 scanner, the run goes on.
    recover      ``verify_consecutive`` samples ``verify_interval_s`` apart, within ``verify_deadline_s``: a benign
                 upload (a 1x1 PNG, else a minimal PDF) gets the app's ``200 {"ok":true,…}``, our antivirus calls it
                 ``ok``, and no malware rejection is logged since the containment. Healthy and every offending client
                 blocked -> the allowlist is restored and the incident is recovered. The antivirus unavailable
                 (unknown), the probe rejected or malware still arriving -> escalate with the blocks and the tightened
                 allowlist kept: nothing is lifted on missing evidence. Healthy but the source could not be blocked
                 (no client nameable, e.g. the audit table is missing) -> the allowlist stays tightened, escalate.
    close        Timeline, report and postmortem draft as Prefect artifacts and in the store.

Blast radius and approval
    ``dry_run`` touches nothing. ``approve`` asks before every mutation; the first refusal ends the containment and
    the run is denied. ``auto`` applies blocks, the allowlist change and the reload within policy: a block TTL at
    most ``max_block_ttl_s``, never an address in ``never_block_cidrs`` (our load balancers, proxies, health
    checkers), never a network broader than /24 (/64), at most ``max_blocks`` per run, actions per service per hour,
    one active remediation per service, kill switch. Nothing destructive is done by this runbook.

Concurrency
    One run per service at a time (Prefect global concurrency limit ``remediate-<service>``). A second run waits up
    to ``lock_timeout_s``, then escalates without acting.

Undo
    Blocks are left to expire after ``block_ttl_s``, so a run never stays alive only to lift them: the simulator's
    edge expires them itself; a WAF IP set, the Vercel firewall and Clerk bans have no TTL of their own, so
    ``remediate serve`` sweeps due expiries every minute. Each block's undo (unblock) is in the ledger for a human
    who wants one lifted early.
    The allowlist: restored by the run once recovery is verified and the source is blocked; otherwise its undo (the
    previous lists) is in the ledger. Reloading signatures needs no undo.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from prefect.client.schemas.objects import State
from pydantic import Field

from remediation import composition
from remediation.forms import RunOptions, RunSeverity, VerifyOptions, runbook_flow
from remediation.incident import RunningIncident
from remediation.models import (
    ActionRecord,
    ActionState,
    BlockActor,
    Evidence,
    FindingStatus,
    Mode,
    Outcome,
    Phase,
    ReloadSignatures,
    Severity,
)
from remediation.providers.quarantine import QuarantineReport
from remediation.providers.security import UploadAllowlist
from remediation.run import close, locked, start_incident, verify_budget
from remediation.runbooks.suspicious_upload import (
    BlockChoice,
    allowlist_plan,
    audit_finding,
    audit_writes_finding,
    block_plans,
    log_finding,
    metric_finding,
    policy_finding,
    verdict,
)
from tasks.common.act import act
from tasks.common.detect import error_rate_finding
from tasks.suspicious_upload.identify import read_audit, read_upload_counts, read_upload_logs
from tasks.suspicious_upload.investigate import audit_evidence, block_evidence, log_evidence, sample_evidence
from tasks.suspicious_upload.read import current_allowlist, quarantined
from tasks.suspicious_upload.verify import verify_uploads

RUNBOOK = "suspicious-upload"


class SuspiciousUploadOptions(RunOptions, VerifyOptions):
    """This runbook's parameters (the Custom run form)."""

    severity: RunSeverity = Severity.SEV1
    window_s: float | None = Field(None, title="Look-back window (s)", description=(
        "How far back the audit rows and the app's upload log lines are read. None: the REMEDIATE_UPLOAD_WINDOW_S "
        "setting (default 600)."))
    min_detections: int | None = Field(None, title="Malware uploads to act on", description=(
        "Malware rejections (audit rows or log lines) at or above which uploads are under attack, and from one "
        "client at or above which that client is blocked. None: the REMEDIATE_UPLOAD_MIN_DETECTIONS setting "
        "(default 3)."))
    min_rejections: int | None = Field(None, title="Rejection burst (samples)", description=(
        "upload_rejected_validation samples on the metrics page (half or more of the uploads) that count as a burst "
        "when neither the audit rows nor the logs can say why. None: the REMEDIATE_UPLOAD_MIN_REJECTIONS setting "
        "(default 5)."))
    block_ttl_s: int | None = Field(None, title="Block TTL (s)", description=(
        "How long each block lasts at the edge; blocks are left to expire. None: the REMEDIATE_BLOCK_TTL_S setting "
        "(default 3600); policy caps it at REMEDIATE_MAX_BLOCK_TTL_S."))
    max_blocks: int = Field(5, title="Most clients to block", description=(
        "More offending clients than this is not one attack (or the scanner rejects everything): nobody is blocked "
        "and a human decides."))
    tighten_allowlist: bool = Field(True, title="Tighten the allowlist", description=(
        "Drop the file extensions and MIME types the attack's quarantined samples came in as from what /api/uploads "
        "accepts, until recovery is verified."))


@runbook_flow(SuspiciousUploadOptions, name=RUNBOOK,
              description="Suspicious upload / malware: identify, contain, investigate, remediate, recover")
async def suspicious_upload(options: SuspiciousUploadOptions) -> State[dict[str, Any]]:
    providers = composition.current()
    incident = start_incident(RUNBOOK, options, providers=providers)
    incident.note(Phase.IDENTIFY, "run started", f"mode {incident.report.mode.value}, "
                  f"{options.min_detections or providers.settings.upload_min_detections}+ malware uploads")
    return await locked(incident, options.service, options.lock_timeout_s, lambda: _remediate(incident, options))


async def _remediate(incident: RunningIncident, options: SuspiciousUploadOptions) -> dict[str, Any]:
    settings = incident.providers.settings
    service, max_blocks, tighten = options.service, options.max_blocks, options.tighten_allowlist
    window_s = options.window_s or settings.upload_window_s
    min_detections = options.min_detections or settings.upload_min_detections
    min_rejections = options.min_rejections or settings.upload_min_rejections
    block_ttl_s = options.block_ttl_s or settings.block_ttl_s
    verify = verify_budget(settings, options)
    providers = incident.providers
    since = providers.clock.now() - timedelta(seconds=window_s)
    # identify ------------------------------------------------------------------------------------------
    audit, logs, counts, requests = await asyncio.gather(
        read_audit(providers, since), read_upload_logs(providers, since), read_upload_counts(providers),
        providers.metrics.request_stats(providers.settings.metrics_window_records))
    audit_f = audit_finding(audit, min_detections, window_s)
    log_f = log_finding(logs, min_detections, window_s)
    metric_f = metric_finding(counts, min_rejections)
    summary = verdict(audit_f, log_f, metric_f)
    incident.add_findings([summary, audit_f, log_f, policy_finding(logs, window_s), metric_f,
                           audit_writes_finding(logs, audit),
                           error_rate_finding(requests, 1.0, 20).informational(
                               "context: this runbook's verdict is the upload signals")])
    if summary.status is FindingStatus.OK:
        incident.note(Phase.IDENTIFY, "no malware upload: standing down")
        return await close(incident, Outcome.STOOD_DOWN)
    if summary.status is FindingStatus.UNKNOWN:
        incident.escalate(Phase.IDENTIFY, "no upload signal can be read, so nothing is changed: a human must look")
        return await close(incident, Outcome.ESCALATED)

    # contain -------------------------------------------------------------------------------------------
    choice = block_plans(service, audit, min_detections=min_detections, ttl_s=block_ttl_s, max_blocks=max_blocks)
    samples, allowlist = await asyncio.gather(quarantined(providers, since), current_allowlist(providers))
    blocks, denied = await _block(incident, choice)
    tightened: ActionRecord | None = None
    if denied is None and tighten:
        tightened, denied = await _tighten(incident, service, allowlist, samples)

    # investigate ---------------------------------------------------------------------------------------
    gathered = await asyncio.gather(audit_evidence(providers, audit, since), sample_evidence(providers, samples),
                                    block_evidence(providers))
    incident.report.evidence.extend([gathered[0], gathered[1], log_evidence(logs), gathered[2]])
    for evidence in incident.report.evidence:
        incident.note(Phase.INVESTIGATE, f"evidence {evidence.source}", evidence.summary)

    # remediate -----------------------------------------------------------------------------------------
    if denied is None:
        denied = await _reload(incident, service)
    if incident.report.mode is Mode.DRY_RUN:
        return await close(incident, Outcome.DRY_RUN)
    if denied is not None:
        answer = denied.approval.answer.value if denied.approval else "refused"
        who = f" by {denied.approval.approver}" if denied.approval and denied.approval.approver else ""
        incident.escalate(denied.phase, f"{denied.plan.summary()} was not approved ({answer}{who}); "
                          f"{_kept(incident)}")
        return await close(incident, Outcome.DENIED)
    applied = [r for r in (*blocks, tightened) if r is not None and r.applied]
    if not applied:
        why = "; ".join(choice.notes) or "no client could be named and no file type to drop"
        incident.escalate(Phase.CONTAIN, f"nothing could be contained ({why}): a human must block the source")
        return await close(incident, Outcome.ESCALATED)

    # recover -------------------------------------------------------------------------------------------
    contained_at = max(r.completed_at or providers.clock.now() for r in applied)
    incident.note(Phase.RECOVER, "verifying", f"{verify['consecutive']} samples {verify['interval_s']:g}s apart "
                  f"within {verify['deadline_s']:g}s: benign upload, antivirus, no new malware")
    verification = await verify_uploads(providers, since=contained_at - timedelta(milliseconds=1), **verify)
    incident.report.verification = verification
    incident.note(Phase.RECOVER, f"verification {'healthy' if verification.healthy else 'failed'}",
                  verification.detail)
    if not verification.healthy:
        incident.escalate(Phase.RECOVER, f"recovery not verified ({verification.detail}); {_kept(incident)}: "
                          "nothing is lifted on missing evidence")
        return await close(incident, Outcome.ESCALATED)
    blocked = {r.plan.value for r in blocks if r.applied and isinstance(r.plan, BlockActor) and
               r.plan.actor_kind == "ip"}
    source_blocked = (bool(choice.offenders) and not choice.too_many and not audit.unattributed
                      and all(a.address in blocked for a in choice.offenders))
    if not source_blocked:
        incident.escalate(Phase.RECOVER, "uploads are clean again, but the source of the malware is not blocked "
                          f"({'; '.join(choice.notes) or 'no offending client could be named'}); {_kept(incident)}")
        return await close(incident, Outcome.ESCALATED)
    if tightened is not None and tightened.applied and (undo := tightened.plan.undo()) is not None:
        restored = await act(incident, Phase.RECOVER, undo, evidence_confirmed=True,
                             why="recovery verified and the source is blocked: give users their file types back")
        if not restored.applied:
            incident.note(Phase.RECOVER, "allowlist still tightened", f"restore it by hand: {undo.summary()}")
    _note_expiry(incident, blocks)
    return await close(incident, Outcome.RECOVERED)


async def _block(incident: RunningIncident, choice: BlockChoice) -> tuple[list[ActionRecord], ActionRecord | None]:
    """Apply the blocks in order; the first one a human refuses ends the containment (returned as denied)."""
    for note in choice.notes:
        incident.note(Phase.CONTAIN, "blocks", note)
    if incident.providers.blocks is None:
        incident.note(Phase.CONTAIN, "no block-list lever",
                      f"{incident.providers.no_lever('blocks')}: clients cannot be blocked at the edge")
    done: list[ActionRecord] = []
    for plan in choice.plans:
        record = await act(incident, Phase.CONTAIN, plan, evidence_confirmed=True, why=plan.reason)
        done.append(record)
        if record.approval is not None and not record.approval.granted:
            return done, record
    return done, None


async def _tighten(incident: RunningIncident, service: str, allowlist: UploadAllowlist | None,
                   samples: QuarantineReport) -> tuple[ActionRecord | None, ActionRecord | None]:
    if allowlist is None:
        incident.note(Phase.CONTAIN, "allowlist not tightened", "no upload-policy lever, or it is unreadable")
        return None, None
    plan, why = allowlist_plan(service, allowlist, samples)
    if plan is None:
        incident.note(Phase.CONTAIN, "allowlist not tightened", why)
        return None, None
    record = await act(incident, Phase.CONTAIN, plan, evidence_confirmed=True, why=why)
    denied = record if record.approval is not None and not record.approval.granted else None
    return record, denied


async def _reload(incident: RunningIncident, service: str) -> ActionRecord | None:
    if incident.providers.antivirus is None:
        incident.note(Phase.REMEDIATE, "no antivirus lever", "flag for an external scanner: nothing here can reload "
                      "signatures or vouch for uploads")
        incident.report.evidence.append(Evidence(
            source="scanner", summary="no antivirus on this platform: have an external scanner re-scan recent "
                                      "uploads and update its signatures", available=False))
        return None
    plan = ReloadSignatures(service=service, reason="pick up the newest signatures before verifying uploads")
    record = await act(incident, Phase.REMEDIATE, plan, evidence_confirmed=True, why=plan.reason)
    if record.approval is not None and not record.approval.granted:
        return record
    if record.state is ActionState.FAILED:
        incident.note(Phase.REMEDIATE, "signatures not reloaded", f"{record.error}; verification decides")
    return None


def _kept(incident: RunningIncident) -> str:
    kept = [what for kind, what in (("block_actor", "blocks kept (they expire by their TTL)"),
                                    ("set_upload_allowlist", "allowlist kept tightened"))
            if incident.applied(kind)]
    return ", ".join(kept) or "nothing contained"


def _note_expiry(incident: RunningIncident, blocks: list[ActionRecord]) -> None:
    for record in blocks:
        if record.applied and record.completed_at is not None:
            ttl = record.plan.ttl_s if isinstance(record.plan, BlockActor) else 0
            incident.note(Phase.RECOVER, f"block left to expire: {record.plan.target}",
                          f"at {record.completed_at + timedelta(seconds=ttl):%H:%M:%S}Z; undo in the ledger")


