"""The public status page beside the simulated platform (``/_sim/status``): incidents with their updates.

A stand-in for Statuspage: an incident has a title, a status (``investigating``, ``identified``, ``monitoring``,
``resolved``) and a list of updates, newest last. The remediation runs post to it as a notification.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kamkmserve_sim.jsfmt import js_iso

if TYPE_CHECKING:
    from kamkmserve_sim.clock import Clock

STATUSES = ("investigating", "identified", "monitoring", "resolved")


@dataclass
class StatusIncident:
    id: str
    title: str
    status: str
    created_at_ms: int
    updates: list[dict[str, str]] = field(default_factory=list)

    def public(self) -> dict[str, object]:
        return {"id": self.id, "title": self.title, "status": self.status,
                "created_at": js_iso(self.created_at_ms), "updates": list(self.updates)}


class StatusBoard:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._ids = itertools.count(1)
        self.incidents: dict[str, StatusIncident] = {}

    def post(self, title: str, body: str, status: str) -> StatusIncident:
        _check_status(status)
        now = self._clock.now_ms()
        incident = StatusIncident(f"st_{next(self._ids):04d}", title, status, now)
        incident.updates.append({"status": status, "body": body, "at": js_iso(now)})
        self.incidents[incident.id] = incident
        return incident

    def update(self, incident_id: str, body: str, status: str) -> StatusIncident:
        _check_status(status)
        incident = self.incidents[incident_id]  # KeyError: unknown incident
        incident.status = status
        incident.updates.append({"status": status, "body": body, "at": js_iso(self._clock.now_ms())})
        return incident

    def listing(self) -> list[dict[str, object]]:
        return [i.public() for i in sorted(self.incidents.values(), key=lambda i: -i.created_at_ms)]


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}")
