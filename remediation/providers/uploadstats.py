"""kamkmserve's upload counters from its metrics page: one raw ``<name> 1`` line per upload outcome.

The uploads route is the one part of the app whose metrics really exist (docs/reference/kamkmserve.md §2.3, "Observed at
runtime"): ``upload_accepted``, ``upload_rejected_validation`` and four more, untagged, one sample per event, in the
collector's ring of the last 1,000 metric samples (shared with every other metric, so how far back the page
reaches depends on traffic). A page without any upload sample says nothing about uploads: *unknown*.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from remediation.models import utcnow
from remediation.providers.promtext import sample_name

UPLOAD_SERIES = ("upload_accepted", "upload_rejected_validation", "upload_rejected_size", "upload_request_invalid",
                 "upload_request_missing_file", "upload_failed_unhandled")


class UploadCounts(BaseModel):
    model_config = ConfigDict(frozen=True)

    available: bool
    reason: str = ""
    at: datetime = Field(default_factory=utcnow)
    counts: dict[str, int] = Field(default_factory=dict)  # every UPLOAD_SERIES name, 0 when absent

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def rejected(self) -> int:
        return self.counts.get("upload_rejected_validation", 0)

    @property
    def accepted(self) -> int:
        return self.counts.get("upload_accepted", 0)


def parse_upload_counts(text: str) -> UploadCounts:
    """Count the upload samples on a metrics page. Raises ValueError when it is not kamkmserve's page."""
    counts = dict.fromkeys(UPLOAD_SERIES, 0)
    own_page = False
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            own_page = own_page or stripped.startswith("# TYPE process_uptime_seconds")
            continue
        name = sample_name(stripped)
        if name == "process_uptime_seconds":
            own_page = True
        if name in counts:
            counts[name] += 1
    if not own_page:
        raise ValueError("not kamkmserve's metrics page: no process_uptime_seconds")
    if not any(counts.values()):
        return UploadCounts(available=False, counts=counts,
                            reason="no upload sample on the metrics page (no upload since the instance started, or "
                                   "other metrics pushed them out of its 1,000-sample ring)")
    return UploadCounts(available=True, counts=counts)
