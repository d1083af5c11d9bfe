"""Reads the upload runbook's containment rests on: the scanner's quarantine and the current upload allowlist."""

from __future__ import annotations

from datetime import datetime

from remediation.providers.quarantine import QuarantineReport
from remediation.providers.security import UploadAllowlist
from remediation.runtime import Providers
from tasks import step


@step(name="contain: quarantined samples")
async def quarantined(providers: Providers, since: datetime) -> QuarantineReport:
    if providers.quarantine is None:
        return QuarantineReport(available=False, reason="no quarantine on this platform: the scanner keeps no sample")
    return await providers.quarantine.samples(since)


@step(name="contain: current upload allowlist")
async def current_allowlist(providers: Providers) -> UploadAllowlist | None:
    """None when there is no upload-policy lever or it cannot be read (then nothing is tightened)."""
    if providers.uploads is None:
        return None
    try:
        return await providers.uploads.allowlist()
    except Exception:
        return None
