"""Investigate for the upload runbook: the actors' audit rows and the attack's samples, preserved with their sha256.

Evidence is kept in the report so that it outlives the sources: the audit table's rows can be pruned and the
quarantine is a ring. Each audit row and each sample carries its sha256 (of the row's canonical JSON, of the
sample's bytes), and the whole set of rows one digest, so a later copy can be checked against the report.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from remediation.models import Evidence
from remediation.providers.quarantine import QuarantineReport
from remediation.providers.security import AuditEvent
from remediation.providers.xff import client_address
from remediation.runbooks.suspicious_upload import Actor, AuditReading, UploadLogReading, error_of
from remediation.runtime import Providers
from tasks import step

MAX_ROWS = 200
MAX_SAMPLE_BYTES = 64 * 1024


def row_item(event: AuditEvent) -> dict[str, Any]:
    row = event.model_dump(mode="json")
    canonical = json.dumps(row, sort_keys=True, separators=(",", ":"))
    return {**row, "sha256": hashlib.sha256(canonical.encode()).hexdigest()}


def actor_item(actor: Actor) -> dict[str, Any]:
    span = (actor.last_seen - actor.first_seen).total_seconds() if actor.first_seen and actor.last_seen else 0.0
    return {"kind": "actor", "address": actor.address, "malware": actor.malware, "rows": actor.rows,
            "events": actor.events, "reasons": actor.reasons, "user_agents": list(actor.user_agents),
            "chains": list(actor.chains), "first_seen": actor.first_seen.isoformat() if actor.first_seen else None,
            "last_seen": actor.last_seen.isoformat() if actor.last_seen else None,
            "rate_per_min": round(actor.malware / (span / 60), 1) if span > 0 else None}


@step(name="investigate: audit rows of the actors")
async def audit_evidence(providers: Providers, audit: AuditReading, since: datetime) -> Evidence:
    """The offenders' rows (every ``upload.*`` event of theirs, and the malware rows that name nobody)."""
    if not audit.available:
        return Evidence(source="audit", summary=audit.reason, available=False)
    report = await providers.audit.events(since, "upload.") if providers.audit else None
    wanted = {a.address for a in audit.actors if a.malware}
    trusted = providers.settings.trusted_proxy_cidrs
    rows = [e for e in (report.events if report and report.available else ())
            if client_address(e.ip, trusted).address in wanted or e in audit.malware_rows]
    items = [row_item(e) for e in rows[-MAX_ROWS:]]
    digest = hashlib.sha256("".join(i["sha256"] for i in items).encode()).hexdigest()
    actors = [actor_item(a) for a in audit.actors if a.malware]
    summary = "; ".join(
        f"{a['address']}: {a['malware']} malware upload(s) {a['first_seen'][11:19]}-{a['last_seen'][11:19]}Z, "
        f"agents {', '.join(a['user_agents']) or '-'}, {len(a['chains'])} distinct x-forwarded-for chain(s)"
        for a in actors) or "no client with a malware upload"
    errors = sorted({e for r in rows if (e := error_of(r))})
    return Evidence(source="audit", summary=f"{summary}; {len(items)} row(s) preserved (sha256 {digest[:16]}…); "
                                            f"errors: {', '.join(errors[:5]) or '-'}",
                    items=({"kind": "rows-digest", "rows": len(items), "sha256": digest}, *actors, *items))


@step(name="investigate: quarantined samples")
async def sample_evidence(providers: Providers, samples: QuarantineReport) -> Evidence:
    """Each distinct sample, re-scanned by our antivirus, bytes kept (up to 64 KiB) with their sha256."""
    if not samples.available:
        return Evidence(source="samples", summary=samples.reason, available=False)
    distinct = {s.sha256: s for s in samples.samples}
    items: list[dict[str, Any]] = []
    for sample in distinct.values():
        data = sample.data()
        item: dict[str, Any] = {"kind": "sample", "sha256": sample.sha256, "size": sample.size,
                                "filename": sample.filename, "mime": sample.mime, "ext": sample.ext,
                                "signature": sample.signature, "first_at": sample.at.isoformat(),
                                "count": sum(1 for s in samples.samples if s.sha256 == sample.sha256)}
        if data is not None and not sample.truncated:
            item["sha256_verified"] = hashlib.sha256(data).hexdigest() == sample.sha256
        if data is not None and len(data) <= MAX_SAMPLE_BYTES:
            item["data_b64"] = sample.data_b64
        if providers.antivirus is not None and data is not None and not sample.truncated:
            verdict = await providers.antivirus.scan(data)
            item["rescan"] = {"status": verdict.status, "signature": verdict.signature, "detail": verdict.detail}
        items.append(item)
    rescans = ", ".join(f"{i['sha256'][:12]}… {i.get('rescan', {}).get('status', 'not rescanned')}"
                        + (f" {i['rescan']['signature']}" if i.get("rescan", {}).get("signature") else "")
                        for i in items)
    return Evidence(source="samples", summary=(f"{len(samples.samples)} detection(s), {len(items)} distinct sample(s)"
                                               + (f": {rescans}" if rescans else "")),
                    items=tuple(items))


def log_evidence(logs: UploadLogReading) -> Evidence:
    if not logs.available:
        return Evidence(source="logs", summary=logs.reason, available=False)
    return Evidence(source="logs", summary=(f"{logs.malware} malware rejection line(s), {logs.scanner_errors} scanner "
                                            f"failure(s), {logs.audit_failures} failed audit write(s) in "
                                            f"{logs.lines} line(s)"),
                    items=tuple({"raw": raw} for raw in logs.excerpts))


@step(name="investigate: blocks in force")
async def block_evidence(providers: Providers) -> Evidence:
    if providers.blocks is None:
        return Evidence(source="blocks", summary="no block-list lever on this platform", available=False)
    try:
        blocks = await providers.blocks.blocks()
    except Exception as exc:
        return Evidence(source="blocks", summary=f"block list unreadable: {exc}", available=False)
    return Evidence(source="blocks", summary=f"{len(blocks)} block(s) in force: "
                                             + (", ".join(f"{b.kind} {b.value} until {b.expires_at:%H:%M:%S}Z"
                                                          if b.expires_at else f"{b.kind} {b.value}"
                                                          for b in blocks) or "none"),
                    items=tuple(b.model_dump(mode="json") for b in blocks))
