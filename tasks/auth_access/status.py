"""The auth runbook's status page notes: notifications, not plans (they change nothing about the service)."""

from __future__ import annotations

from remediation.incident import RunningIncident
from remediation.models import Mode, Phase
from remediation.runbooks.auth_access import STATUS_TITLE


async def post_status(incident: RunningIncident, body: str) -> str | None:
    """Open the status page incident; a dry run or a platform without a status page only notes it."""
    providers = incident.providers
    if incident.report.mode is Mode.DRY_RUN:
        incident.note(Phase.CONTAIN, "status update not posted (dry run)", body)
        return None
    if providers.status_page is None:
        incident.note(Phase.CONTAIN, "no status page configured", body)
        return None
    try:
        status_id = await providers.status_page.post(STATUS_TITLE, body, "investigating")
    except Exception as exc:
        incident.note(Phase.CONTAIN, "status update failed", f"{type(exc).__name__}: {exc}")
        return None
    incident.note(Phase.CONTAIN, f"{_POSTED}{status_id})", body)
    return status_id


_POSTED = "status posted: investigating ("


def posted_status_id(incident: RunningIncident) -> str | None:
    """The status page incident an earlier run of this incident opened (a continuation updates it)."""
    for entry in incident.report.timeline:
        if entry.event.startswith(_POSTED) and entry.event.endswith(")"):
            return entry.event[len(_POSTED):-1]
    return None


async def update_status(incident: RunningIncident, phase: Phase, status_id: str | None, status: str,
                        body: str) -> None:
    providers = incident.providers
    if status_id is None or providers.status_page is None:
        return
    try:
        await providers.status_page.update(status_id, body, status)
    except Exception as exc:
        incident.note(phase, "status update failed", f"{type(exc).__name__}: {exc}")
        return
    incident.note(phase, f"status updated: {status} ({status_id})", body)
