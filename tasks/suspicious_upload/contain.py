"""Contain for the upload runbook: which clients to block, and how to tighten the upload allowlist (pure plans)."""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel, ConfigDict

from remediation.models import BlockActor, SetUploadAllowlist
from remediation.providers.quarantine import QuarantineReport
from remediation.providers.security import UploadAllowlist
from tasks.suspicious_upload.identify import Actor, AuditReading


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
