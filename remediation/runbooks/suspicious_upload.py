"""Pure decisions of the suspicious-upload runbook (flows/suspicious_upload.py): what the audit rows, log lines and
counters say, and which blocks and allowlist change to propose. No Prefect, no I/O.

What the app really records (docs/reference/kamkmserve.md §3.2, §5.1, §7): a rejected upload gives
``upload_rejected_validation`` (one untagged sample), the log line ``Upload: validation failed`` with ``context.error``
(no request fields, so no client), and an audit row ``upload.validation_failed`` whose ``ip`` is the raw x-forwarded-for
chain and whose ``metadata`` is the JSON string ``{"error": …}``. Only the error text says *why*:
``Malware scan failed: <reason>``. ``Malware scan failed: scan-error`` is the scanner failing closed, not a detection,
and is counted apart.

Only the audit table names clients. The client of a row is the right-most address of its chain outside our trusted
proxies (``remediation.providers.xff``): a chain that names nobody, or that names an address in the never-block
ranges, never yields an actor, so a spoofed chain cannot make the runbook propose blocking our own network.
"""

from __future__ import annotations

import ipaddress
import json
from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from remediation.models import BlockActor, Finding, FindingStatus, SetUploadAllowlist
from remediation.providers.platform import LogLine
from remediation.providers.quarantine import QuarantineReport
from remediation.providers.security import AuditEvent, AuditReport, UploadAllowlist
from remediation.providers.uploadstats import UploadCounts
from remediation.providers.xff import client_address

MALWARE_PREFIX = "Malware scan failed"
SCAN_ERROR = "scan-error"  # avscan.ts's catch: the scanner failed, the upload was refused (fail-closed)
VALIDATION_FAILED = "Upload: validation failed"
AUDIT_FAILED = "Failed to write audit log"
AUDIT_WRITTEN = "Security event: Audit: "
EXTENSION_REFUSED = "File extension not allowed: "  # validateUpload's allowlist refusal, before any scan


def error_of(event: AuditEvent) -> str | None:
    """``metadata.error`` of an audit row (a JSON *string*), or None."""
    try:
        metadata = json.loads(event.metadata or "null")
    except ValueError:
        return None
    error = metadata.get("error") if isinstance(metadata, dict) else None
    return error if isinstance(error, str) else None


def malware_reason(error: str | None) -> str | None:
    """The scanner's reason when ``error`` is a malware detection (not a scanner failure), else None."""
    if error is None or not error.startswith(MALWARE_PREFIX):
        return None
    reason = error.removeprefix(MALWARE_PREFIX).lstrip(":").strip()
    if reason == SCAN_ERROR:
        return None
    return reason or "(no reason)"


def policy_reason(error: str | None) -> str | None:
    """The refusal when ``error`` is the upload policy saying no (extension, MIME, size, buffer), else None: the
    app refuses a ``.exe`` by its name without scanning it, so that is no malware detection."""
    if error is None or error.startswith(MALWARE_PREFIX):
        return None
    return error.strip() or "(no reason)"


class Actor(BaseModel):
    """One client named by the audit rows, with what it did in the window."""

    model_config = ConfigDict(frozen=True)

    address: str
    malware: int = 0
    rows: int = 0
    events: dict[str, int] = Field(default_factory=dict)
    reasons: dict[str, int] = Field(default_factory=dict)
    user_agents: tuple[str, ...] = ()
    chains: tuple[str, ...] = ()  # the distinct raw x-forwarded-for values (spoofed left entries show here)
    user_ids: tuple[str, ...] = ()
    first_seen: datetime | None = None
    last_seen: datetime | None = None


class AuditReading(BaseModel):
    model_config = ConfigDict(frozen=True)

    available: bool
    reason: str = ""
    table_missing: bool = False
    rows: int = 0
    events: dict[str, int] = Field(default_factory=dict)
    malware: int = 0
    scanner_errors: int = 0
    actors: tuple[Actor, ...] = ()  # most malware first
    unattributed: int = 0  # malware rows whose chain names nobody we may block
    unattributed_why: tuple[str, ...] = ()
    malware_rows: tuple[AuditEvent, ...] = ()

    def offenders(self, min_detections: int) -> list[Actor]:
        return [a for a in self.actors if a.malware >= min_detections]


def group_actors(report: AuditReport, trusted_proxies: Sequence[str], never_block: Sequence[str]) -> AuditReading:
    """Group ``upload.*`` rows by the client that sent them (pure)."""
    if not report.available:
        return AuditReading(available=False, reason=report.reason, table_missing=report.table_missing)
    protected = [ipaddress.ip_network(cidr, strict=False) for cidr in never_block]
    by_actor: dict[str, list[AuditEvent]] = {}
    unattributed: Counter[str] = Counter()
    malware_rows: list[AuditEvent] = []
    scanner_errors = 0
    for event in report.events:
        error = error_of(event)
        is_malware = event.event == "upload.validation_failed" and malware_reason(error) is not None
        scanner_errors += int(error == f"{MALWARE_PREFIX}: {SCAN_ERROR}")
        if is_malware:
            malware_rows.append(event)
        client = client_address(event.ip, trusted_proxies)
        why = client.reason
        if client.address is not None and _protected(client.address, protected):
            why = f"{client.address} is in a never-block range (our own network)"
            client = client.model_copy(update={"address": None})
        if client.address is None:
            if is_malware:
                unattributed[why or "no client address"] += 1
            continue
        by_actor.setdefault(client.address, []).append(event)
    actors = sorted((_actor(address, rows) for address, rows in by_actor.items()),
                    key=lambda a: (-a.malware, -a.rows, a.address))
    return AuditReading(
        available=True, rows=len(report.events), events=dict(Counter(e.event for e in report.events)),
        malware=len(malware_rows), scanner_errors=scanner_errors, actors=tuple(actors),
        unattributed=sum(unattributed.values()),
        unattributed_why=tuple(f"{n}x {why}" for why, n in unattributed.most_common(5)),
        malware_rows=tuple(malware_rows))


def _protected(address: str, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip.version == n.version and ip in n for n in networks)


def _actor(address: str, rows: list[AuditEvent]) -> Actor:
    reasons: Counter[str] = Counter()
    for row in rows:
        reason = malware_reason(error_of(row)) if row.event == "upload.validation_failed" else None
        if reason is not None:
            reasons[reason] += 1
    return Actor(
        address=address, malware=sum(reasons.values()), rows=len(rows),
        events=dict(Counter(r.event for r in rows)), reasons=dict(reasons),
        user_agents=tuple(dict.fromkeys(r.user_agent for r in rows if r.user_agent)),
        chains=tuple(dict.fromkeys(r.ip for r in rows if r.ip))[:10],
        user_ids=tuple(dict.fromkeys(r.actor_user_id for r in rows if r.actor_user_id)),
        first_seen=min(r.created_at for r in rows), last_seen=max(r.created_at for r in rows))


class UploadLogReading(BaseModel):
    model_config = ConfigDict(frozen=True)

    available: bool
    reason: str = ""
    lines: int = 0
    uploads: int = 0  # lines of the uploads route
    malware: int = 0
    scanner_errors: int = 0
    reasons: dict[str, int] = Field(default_factory=dict)
    policy: int = 0  # validation failures that are the allowlist refusing, not the scanner detecting
    policy_reasons: dict[str, int] = Field(default_factory=dict)
    refused_extensions: dict[str, int] = Field(default_factory=dict)
    audit_failures: int = 0
    audit_error: str | None = None
    audit_written: int = 0
    excerpts: tuple[str, ...] = ()


def parse_upload_logs(lines: list[LogLine]) -> UploadLogReading:
    reasons: Counter[str] = Counter()
    refusals: Counter[str] = Counter()
    extensions: Counter[str] = Counter()
    uploads = scanner_errors = failures = written = 0
    audit_error: str | None = None
    excerpts: list[str] = []
    for line in lines:
        if line.message.startswith("Upload"):
            uploads += 1
        error = (line.context or {}).get("error")
        if line.message == VALIDATION_FAILED and isinstance(error, str):
            reason = malware_reason(error)
            if reason is not None:
                reasons[reason] += 1
                excerpts.append(line.raw)
            elif error == f"{MALWARE_PREFIX}: {SCAN_ERROR}":
                scanner_errors += 1
            elif (refusal := policy_reason(error)) is not None:
                refusals[refusal] += 1
                if refusal.startswith(EXTENSION_REFUSED):
                    extensions[refusal.removeprefix(EXTENSION_REFUSED).strip()] += 1
        elif line.message == AUDIT_FAILED:
            failures += 1
            audit_error = str(error) if error is not None else audit_error
            if failures <= 3:
                excerpts.append(line.raw)
        elif line.message.startswith(AUDIT_WRITTEN):
            written += 1
    return UploadLogReading(available=True, lines=len(lines), uploads=uploads, malware=sum(reasons.values()),
                            scanner_errors=scanner_errors, reasons=dict(reasons), policy=sum(refusals.values()),
                            policy_reasons=dict(refusals), refused_extensions=dict(extensions), audit_failures=failures,
                            audit_error=audit_error, audit_written=written, excerpts=tuple(excerpts[-20:]))


# -- findings ---------------------------------------------------------------------------------------------------
def audit_finding(reading: AuditReading, min_detections: int, window_s: float) -> Finding:
    if not reading.available:
        return Finding(check="upload_audit", status=FindingStatus.UNKNOWN, threshold=min_detections,
                       unit="detections", detail=reading.reason,
                       evidence={"table_missing": reading.table_missing})
    offenders = reading.offenders(min_detections)
    breach = bool(offenders) or reading.malware >= min_detections
    top = "; ".join(f"{a.address}: {a.malware} malware of {a.rows} rows" for a in reading.actors[:3] if a.malware)
    return Finding(
        check="upload_audit", status=FindingStatus.BREACH if breach else FindingStatus.OK,
        observed=reading.malware, threshold=min_detections, unit="detections",
        detail=(f"{reading.malware} malware rejection(s) in {reading.rows} upload audit row(s) of the last "
                f"{window_s:g}s from {len([a for a in reading.actors if a.malware])} client(s)"
                + (f"; {top}" if top else "")
                + (f"; {reading.unattributed} name no client we may block ({', '.join(reading.unattributed_why)})"
                   if reading.unattributed else "")),
        evidence={"events": reading.events, "scanner_errors": reading.scanner_errors,
                  "offenders": [a.address for a in offenders]})


def log_finding(reading: UploadLogReading, min_detections: int, window_s: float) -> Finding:
    if not reading.available:
        return Finding(check="upload_log_malware", status=FindingStatus.UNKNOWN, threshold=min_detections,
                       unit="detections", detail=reading.reason)
    if not reading.lines:
        return Finding(check="upload_log_malware", status=FindingStatus.UNKNOWN, threshold=min_detections,
                       unit="detections", detail=f"no log line at all in the last {window_s:g}s: the log source "
                                                 "shows nothing, so it proves nothing")
    reasons = ", ".join(f"{n}x {r}" for r, n in sorted(reading.reasons.items(), key=lambda kv: -kv[1]))
    return Finding(
        check="upload_log_malware",
        status=FindingStatus.BREACH if reading.malware >= min_detections else FindingStatus.OK,
        observed=reading.malware, threshold=min_detections, unit="detections",
        detail=(f"{reading.malware} '{VALIDATION_FAILED}' line(s) with '{MALWARE_PREFIX}: …' among {reading.uploads} "
                f"upload line(s) of the last {window_s:g}s" + (f" ({reasons})" if reasons else "")
                + (f"; {reading.scanner_errors} scanner failure(s) (scan-error)" if reading.scanner_errors else "")
                + (f"; {reading.policy} policy rejection(s) not counted as malware (see upload_log_policy)"
                   if reading.policy else "")),
        evidence={"reasons": reading.reasons, "scanner_errors": reading.scanner_errors, "policy": reading.policy})


def policy_finding(reading: UploadLogReading, window_s: float) -> Finding:
    """Uploads the allowlist refused (``File extension not allowed: .exe``, ``MIME not allowed: …``): context
    beside the malware count, naming what was refused; they never make or unmake a malware verdict."""
    if not reading.available or not reading.lines:
        return Finding(check="upload_log_policy", status=FindingStatus.UNKNOWN, unit="rejections",
                       detail=reading.reason or f"no log line at all in the last {window_s:g}s")
    refused = ", ".join(f"{n}x {r}" for r, n in sorted(reading.policy_reasons.items(), key=lambda kv: -kv[1]))
    return Finding(
        check="upload_log_policy", status=FindingStatus.INFO, observed=reading.policy, unit="rejections",
        detail=(f"{reading.policy} '{VALIDATION_FAILED}' line(s) refused by the upload policy, not by the scanner, "
                f"in the last {window_s:g}s" + (f" ({refused})" if refused else "")),
        evidence={"reasons": reading.policy_reasons, "extensions": reading.refused_extensions})


def audit_writes_finding(reading: UploadLogReading, audit: AuditReading) -> Finding:
    """The app's own audit writes: failing writes are a finding of their own (the trail is being lost)."""
    if reading.available and reading.audit_failures:
        return Finding(check="audit_writes", status=FindingStatus.BREACH, observed=reading.audit_failures,
                       threshold=0, unit="failed writes",
                       detail=(f"the app logged '{AUDIT_FAILED}' {reading.audit_failures} time(s) "
                               f"({reading.audit_error}): audit writes are failing"
                               + (", the table is missing" if audit.table_missing else "")))
    if audit.table_missing:
        return Finding(check="audit_writes", status=FindingStatus.BREACH, threshold=0, unit="failed writes",
                       detail="kamkmserve_audit_log does not exist, so every audit write of the app is failing")
    if reading.available and reading.audit_written:
        return Finding(check="audit_writes", status=FindingStatus.OK, observed=0, threshold=0, unit="failed writes",
                       detail=f"{reading.audit_written} audit write(s) succeeded")
    return Finding(check="audit_writes", status=FindingStatus.UNKNOWN, threshold=0, unit="failed writes",
                   detail=reading.reason or "no audit write logged either way")


def metric_finding(counts: UploadCounts, min_rejections: int) -> Finding:
    if not counts.available:
        return Finding(check="upload_rejected_validation", status=FindingStatus.UNKNOWN, threshold=min_rejections,
                       unit="samples", detail=counts.reason, evidence={"counts": counts.counts})
    share = counts.rejected / max(counts.rejected + counts.accepted, 1)
    burst = counts.rejected >= min_rejections and share >= 0.5
    return Finding(
        check="upload_rejected_validation", status=FindingStatus.BREACH if burst else FindingStatus.OK,
        observed=counts.rejected, threshold=min_rejections, unit="samples",
        detail=(f"{counts.rejected} rejected and {counts.accepted} accepted upload(s) on the metrics page "
                f"({share:.0%} rejected; the page keeps the app's last 1,000 samples and says nothing of why)"),
        evidence={"counts": counts.counts})


def verdict(audit: Finding, logs: Finding, metric: Finding) -> Finding:
    """Malware seen in the audit rows or the logs is a breach. A rejection burst on the metrics page is one only
    when neither can say why; an ok needs a source that could have seen malware (or no rejection at all)."""
    malware = [f for f in (audit, logs) if f.status is FindingStatus.BREACH]
    if malware:
        return Finding(check="suspicious_uploads", status=FindingStatus.BREACH, observed=max(
            int(f.observed or 0) for f in malware), threshold=audit.threshold, unit="detections",
            detail="; ".join(f.detail for f in malware))
    readable = [f for f in (audit, logs) if f.status is FindingStatus.OK]
    if metric.status is FindingStatus.BREACH and not readable:
        return Finding(check="suspicious_uploads", status=FindingStatus.BREACH, observed=metric.observed,
                       threshold=metric.threshold, unit="samples",
                       detail=f"a rejection burst whose cause nothing readable names: {metric.detail}")
    if readable or (metric.status is FindingStatus.OK and metric.observed == 0):
        return Finding(check="suspicious_uploads", status=FindingStatus.OK, observed=0, threshold=audit.threshold,
                       unit="detections", detail="; ".join(f.detail for f in readable) or metric.detail)
    return Finding(check="suspicious_uploads", status=FindingStatus.UNKNOWN, threshold=audit.threshold,
                   unit="detections", detail="no source can show malware uploads: "
                   + "; ".join(f"{f.check}: {f.detail}" for f in (audit, logs, metric)))


class BlockChoice(BaseModel):
    """The blocks to propose and, in words, why any offender is left out."""

    model_config = ConfigDict(frozen=True)

    plans: tuple[BlockActor, ...] = ()
    notes: tuple[str, ...] = ()
    offenders: tuple[Actor, ...] = ()
    too_many: bool = False  # detections spread over more clients than one attack: not a case for blocks


def block_plans(service: str, audit: AuditReading, *, min_detections: int, ttl_s: int,
                max_blocks: int) -> BlockChoice:
    """One TTL'd block per offending client (``min_detections`` or more malware rejections), and per user id the
    rows name (the app records none today). More offenders than ``max_blocks`` is not one attacker but many
    clients (or a scanner that rejects everything): nobody is blocked and a human decides."""
    offenders = audit.offenders(min_detections)
    notes: list[str] = []
    if not audit.available:
        notes.append(f"no client can be named without the audit rows ({audit.reason})")
    if audit.unattributed:
        notes.append(f"{audit.unattributed} malware rejection(s) name no client we may block: "
                     + ", ".join(audit.unattributed_why))
    if len(offenders) > max_blocks:
        notes.append(f"{len(offenders)} clients each sent {min_detections}+ malware uploads, more than the "
                     f"{max_blocks} one run may block: not blocking anyone")
        return BlockChoice(notes=tuple(notes), offenders=tuple(offenders), too_many=True)
    plans: list[BlockActor] = []
    for actor in offenders:
        why = (f"{actor.malware} malware upload(s) ({', '.join(actor.reasons)}) from {actor.address} between "
               f"{actor.first_seen:%H:%M:%S} and {actor.last_seen:%H:%M:%S}Z")
        plans.append(BlockActor(service=service, actor_kind="ip", value=actor.address, ttl_s=ttl_s,
                                evidence_count=actor.malware, reason=why))
        plans.extend(BlockActor(service=service, actor_kind="user", value=user, ttl_s=ttl_s,
                                evidence_count=actor.malware, reason=why) for user in actor.user_ids)
    if offenders and not any(a.user_ids for a in offenders):
        notes.append("no user or session to block: the uploads route is unauthenticated and its audit rows carry "
                     "no actor_user_id")
    return BlockChoice(plans=tuple(plans), notes=tuple(notes), offenders=tuple(offenders))


def allowlist_plan(service: str, current: UploadAllowlist, samples: QuarantineReport
                   ) -> tuple[SetUploadAllowlist | None, str]:
    """Drop the extensions and MIME types the quarantined samples came in as; (None, why) when nothing to drop."""
    if not samples.available:
        return None, f"the attack's file type is unknown ({samples.reason})"
    if not samples.samples:
        return None, "the attack's file type is unknown: the scanner kept no sample in the window"
    used_ext = Counter(s.ext for s in samples.samples if s.ext)
    used_mime = Counter(s.mime for s in samples.samples if s.mime)
    extensions = tuple(e for e in current.extensions if e not in used_ext)
    mime_types = tuple(m for m in current.mime_types if m not in used_mime)
    if (extensions, mime_types) == (current.extensions, current.mime_types):
        return None, (f"the attack's types ({', '.join(used_ext)} / {', '.join(used_mime)}) are not on the "
                      "allowlist any more")
    dropped = [e for e in current.extensions if e not in extensions] + \
        [m for m in current.mime_types if m not in mime_types]
    plan = SetUploadAllowlist(
        service=service, extensions=extensions, mime_types=mime_types, previous_extensions=current.extensions,
        previous_mime_types=current.mime_types,
        reason=f"the {len(samples.samples)} quarantined sample(s) came in as {', '.join(dropped)}")
    return plan, plan.reason
