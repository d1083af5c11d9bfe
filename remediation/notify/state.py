"""What the channels did outside, per incident, kept where a restarted process finds it again.

PagerDuty needs to know which tiers it paged for an incident (an answer acknowledges them, a recovery resolves them)
and Statuspage which public incident it opened (later steps update it instead of opening a second one). A run that
outlives its process (``remediate serve`` restarted while an approval waits, a run resumed elsewhere) must carry on
from there, so the channels read and write this through :class:`NotifyState`: the store
(:class:`~remediation.store.notify_state.NotifyStateMethods`) in a real deployment, :class:`MemoryNotifyState` when a
channel is built without one (tests, probes, the demo's throwaway channels).

Tiers and statuses are plain strings here: the store knows nothing of the channels' enums.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class StatuspageRecord(Protocol):
    """The Statuspage incident opened for one of our incidents, and the status last posted to it."""

    @property
    def statuspage_id(self) -> str: ...

    @property
    def status(self) -> str: ...  # identified, monitoring, resolved


class NotifyState(Protocol):
    def paged_tiers(self, incident_id: str) -> set[str]:
        """Tiers with an alert we opened and have not resolved."""
        ...

    def record_page(self, incident_id: str, tier: str, at: datetime) -> None:
        """``tier`` was paged (again) for the incident: open until :meth:`resolve_pages`."""
        ...

    def resolve_pages(self, incident_id: str, tiers: Iterable[str], at: datetime) -> None: ...

    def statuspage_incident(self, incident_id: str, page_id: str) -> StatuspageRecord | None:
        """What we opened on Statuspage page ``page_id`` for the incident (resolved ones too); None if nothing."""
        ...

    def record_statuspage_incident(self, incident_id: str, page_id: str, statuspage_id: str, status: str,
                                   at: datetime) -> None:
        """Remember the Statuspage incident and the status just posted to it (insert or update)."""
        ...


@dataclass(frozen=True)
class PublicIncident:
    statuspage_id: str
    status: str


class MemoryNotifyState:
    """:class:`NotifyState` in this process only: gone with it. For channels built without a store."""

    def __init__(self) -> None:
        self._pages: dict[str, set[str]] = {}
        self._public: dict[tuple[str, str], PublicIncident] = {}
        self._lock = threading.Lock()  # synchronous callers publish from a helper thread

    def paged_tiers(self, incident_id: str) -> set[str]:
        with self._lock:
            return set(self._pages.get(incident_id, ()))

    def record_page(self, incident_id: str, tier: str, at: datetime) -> None:
        with self._lock:
            self._pages.setdefault(incident_id, set()).add(tier)

    def resolve_pages(self, incident_id: str, tiers: Iterable[str], at: datetime) -> None:
        with self._lock:
            open_tiers = self._pages.get(incident_id, set())
            open_tiers.difference_update(tiers)
            if not open_tiers:  # a long-lived process forgets incidents it has nothing left open for
                self._pages.pop(incident_id, None)

    def statuspage_incident(self, incident_id: str, page_id: str) -> PublicIncident | None:
        with self._lock:
            return self._public.get((incident_id, page_id))

    def record_statuspage_incident(self, incident_id: str, page_id: str, statuspage_id: str, status: str,
                                   at: datetime) -> None:
        with self._lock:
            self._public[(incident_id, page_id)] = PublicIncident(statuspage_id=statuspage_id, status=status)
