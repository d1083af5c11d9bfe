"""Recover for the upload runbook: a benign upload passes end to end, our antivirus calls it clean, and no malware
rejection is logged since the containment.

Each sample POSTs one small, harmless file to ``/api/uploads`` (the route stores nothing,
docs/reference/kamkmserve.md §7) and expects exactly ``200 {"ok":true,"mime":…,"ext":…,"bytes":…}``, has the antivirus
scan the same bytes (only ``ok`` is clean: ``unavailable``/``error`` make the sample unknown, never healthy), and counts
the app's ``Upload: validation failed`` lines with a malware reason logged since the previous sample. The probe file is
a type the (possibly tightened) allowlist still accepts: a 1x1 PNG, else a minimal PDF.
"""

from __future__ import annotations

import json
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from remediation.models import Verification
from remediation.providers.metrics import app_client
from remediation.providers.security import UploadAllowlist
from remediation.runbooks.suspicious_upload import parse_upload_logs
from remediation.runtime import Providers
from tasks import step
from tasks.common.verify import Reading, verify_since

UPLOADS_PATH = "/api/uploads"
# The smallest PNG the app accepts: signature, IHDR, IDAT, IEND of a 1x1 image.
TINY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000001e221bc330000000049454e44ae426082")
TINY_PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n" \
           b"trailer<</Root 1 0 R>>\n%%EOF\n"
PROBES = ((".png", "image/png", "remediation-probe.png", TINY_PNG),
          (".pdf", "application/pdf", "remediation-probe.pdf", TINY_PDF))


class ProbeFile(BaseModel):
    model_config = ConfigDict(frozen=True)

    filename: str
    mime: str
    ext: str
    data: bytes


def probe_file(allowlist: UploadAllowlist | None) -> ProbeFile | None:
    """A benign file of a type ``allowlist`` accepts (the app's defaults when None); None when none is left."""
    for ext, mime, name, data in PROBES:
        if allowlist is None or (ext in allowlist.extensions and mime in allowlist.mime_types):
            return ProbeFile(filename=name, mime=mime, ext=ext, data=data)
    return None


class UploadAnswer(BaseModel):
    model_config = ConfigDict(frozen=True)

    passed: bool
    answered: bool  # False: not a verdict (unreachable, rate limited)
    detail: str


async def post_probe(providers: Providers, probe: ProbeFile) -> UploadAnswer:
    """One benign upload; passed only on exactly the app's success answer for this file.

    Sent by the app client the reads use (its request budget counts it, and it goes wherever the reads go: the
    simulator in-process included); without one the sample is unknown, never healthy."""
    files = {"file": (probe.filename, probe.data, probe.mime)}
    http = app_client(providers.metrics)
    if http is None:
        return UploadAnswer(passed=False, answered=False, detail=f"POST {UPLOADS_PATH}: no client of the app")
    fetched = await http.send("POST", UPLOADS_PATH, files=files)
    if fetched.status is None:
        return UploadAnswer(passed=False, answered=False, detail=f"POST {UPLOADS_PATH}: {fetched.error}")
    text = fetched.text[:200]
    if fetched.status == 429:
        return UploadAnswer(passed=False, answered=False, detail=f"rate limited (429): {text}")
    expected = {"ok": True, "mime": probe.mime, "ext": probe.ext, "bytes": len(probe.data)}
    try:
        body = json.loads(fetched.text)
    except ValueError:
        body = None
    if fetched.status == 200 and body == expected:
        return UploadAnswer(passed=True, answered=True, detail=f"{probe.filename} accepted")
    return UploadAnswer(passed=False, answered=True, detail=f"{probe.filename} answered {fetched.status} {text}")


@step(name="recover: benign upload passes, no new malware")
async def verify_uploads(providers: Providers, *, since: datetime, consecutive: int, interval_s: float,
                         deadline_s: float) -> Verification:
    """Healthy = ``consecutive`` samples in a row with the probe accepted, the antivirus saying ok for it and no
    malware rejection logged. An antivirus that cannot answer makes a sample unknown; 2 x ``consecutive``
    unhealthy samples in a row end the wait early."""
    check = (f"benign upload accepted, antivirus ok, no malware rejection since containment: {consecutive} samples "
             f"{interval_s:g}s apart")
    return await verify_since(providers, check=check, since=since, consecutive=consecutive, interval_s=interval_s,
                              deadline_s=deadline_s, read=lambda at: _sample(providers, at), healthy_word="recovered")


async def _sample(providers: Providers, since: datetime) -> Reading:
    """(value, healthy, words): value = problems found, None when a part could not be judged (unknown)."""
    allowlist = None
    if providers.uploads is not None:
        try:
            allowlist = await providers.uploads.allowlist()
        except Exception as exc:
            return None, False, f"unknown: upload allowlist unreadable ({exc})"
    probe = probe_file(allowlist)
    if probe is None:
        return None, False, "unknown: the allowlist accepts no benign type to probe with (PNG or PDF)"
    if providers.antivirus is None:
        return None, False, "unknown: no antivirus to vouch for the probe (flag for an external scanner)"
    answer = await post_probe(providers, probe)
    verdict = await providers.antivirus.scan(probe.data)
    malware: int | None = None
    try:
        reading = parse_upload_logs(await providers.logs.lines(since=since, limit=5000))
    except Exception as exc:
        log_words = f"logs unreadable: {exc}"
    else:
        # A refused .exe after the allowlist was tightened is the containment working, not new malware.
        malware = reading.malware
        log_words = f"{malware} new malware rejection(s)" + (
            f", {reading.policy} refused by the upload policy" if reading.policy else "")
    words = (f"probe {answer.detail}; antivirus {verdict.status}"
             + (f" ({verdict.detail})" if not verdict.clean and verdict.detail else "") + f"; {log_words}")
    problems = int(answer.answered and not answer.passed) + int(verdict.status == "found") + (malware or 0)
    if problems:
        return float(problems), False, words
    if not answer.answered or verdict.status in ("unavailable", "error") or malware is None:
        return None, False, f"unknown: {words}"
    return 0.0, True, words
