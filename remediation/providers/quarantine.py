"""What the upload scanner kept of the files it rejected: the samples of an attack, for evidence and re-scanning.

kamkmserve stores no upload (docs/reference/kamkmserve.md §7: the route validates and answers metadata), and its audit
row of a rejection holds only the error string, so the file type an attack used and the file itself exist only where the
scanner hook (the app's intended ``AVSCAN_URL`` service) quarantines them. clamd keeps nothing, so a platform
without such a service has no quarantine (``Providers.quarantine`` None) and the runbook says so.
"""

from __future__ import annotations

import base64
from datetime import datetime

from pydantic import BaseModel, ConfigDict


class QuarantinedSample(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    at: datetime
    sha256: str
    size: int
    filename: str
    mime: str  # as validateUpload saw it: sniffed from magic bytes, else the client's type
    ext: str
    signature: str
    data_b64: str | None = None  # the kept bytes (may be cut short: ``truncated``)
    truncated: bool = False

    def data(self) -> bytes | None:
        return base64.b64decode(self.data_b64) if self.data_b64 is not None else None


class QuarantineReport(BaseModel):
    """Reads never raise: an unreachable quarantine is ``available=False`` with the reason."""

    model_config = ConfigDict(frozen=True)

    available: bool
    reason: str = ""
    samples: tuple[QuarantinedSample, ...] = ()


