"""Atlassian Statuspage (API v1): the public face of a SEV-1/2 incident.

Shape (docs/reference/integrations.md §4): base ``https://api.statuspage.io/v1``, header ``Authorization: OAuth <key>``
(not Bearer); ``POST /pages/{page}/incidents`` and ``PATCH /pages/{page}/incidents/{id}`` with
``{"incident": {name, status, impact_override, body, component_ids, components, deliver_notifications,
metadata}}``; ``GET /pages/{page}/incidents/unresolved``; about one request a second (``420``/``429`` beyond).

When (brief: create on SEV-1/2 contain, update on recover and escalate):

- the first *applied* containment of a SEV-1/2 incident opens a Statuspage incident (``identified``) with the
  configured components at ``major_outage`` (SEV-1) or ``partial_outage`` (SEV-2);
- a recovery step moves it to ``monitoring`` (once: later steps post nothing while it says so); an escalation
  posts an ``identified`` update (so a recovery after it says ``monitoring`` again);
- ``recovered`` resolves it and sets the components back to ``operational``; other endings leave it open for
  the humans who now own it.

The page is public: bodies are fixed, plain sentences. Internal detail (IPs, users, reasons) stays in Slack.
Which Statuspage incident is ours, and the status last posted, is kept in a
:class:`~remediation.notify.state.NotifyState` (the store, in ``remediate serve``), so a restarted worker updates
the incident it opened instead of opening a second one. Our incident id also rides in
``metadata.remediator.incident_id``: an incident opened before its record was kept is found again through
``incidents/unresolved``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

import httpx
from pydantic import SecretStr

from remediation.models import ActionState, Outcome, Phase, Severity
from remediation.notify.http import NotConfigured, NotifyError, call, refusal
from remediation.notify.notifier import EventKind, IncidentEvent
from remediation.notify.probe import ProbeResult
from remediation.notify.redact import redact
from remediation.notify.state import MemoryNotifyState, NotifyState, PublicIncident, StatuspageRecord
from remediation.providers.capabilities import Clock

log = logging.getLogger("remediation.notify")

PUBLIC_SEVERITIES = frozenset({Severity.SEV1, Severity.SEV2})
_IMPACT = {Severity.SEV1: "critical", Severity.SEV2: "major"}
_COMPONENT = {Severity.SEV1: "major_outage", Severity.SEV2: "partial_outage"}
_BODY = {
    "identified": "We have identified an issue affecting {service} and are working on it.",
    "monitoring": "A fix has been applied to {service}. We are monitoring the results.",
    "escalated": "Our engineers are working on the issue affecting {service}. We will post an update soon.",
    "resolved": "The issue affecting {service} has been resolved.",
}


class StatuspageClient:
    """The REST calls (also used as :class:`~remediation.providers.capabilities.StatusUpdates` below)."""

    def __init__(self, api_key: SecretStr | str | None, page_id: str | None, *,
                 base_url: str = "https://api.statuspage.io/v1", timeout_s: float = 5.0,
                 clock: Clock | None = None, transport: httpx.AsyncBaseTransport | None = None) -> None:
        raw = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        self._key = raw or None
        self.page_id = page_id
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.clock = clock
        self._transport = transport

    def secrets(self) -> Iterable[str]:
        return [self._key] if self._key else []

    def _require(self) -> tuple[str, str]:
        if not self._key or not self.page_id:
            missing = [name for name, value in (("REMEDIATE_STATUSPAGE_API_KEY", self._key),
                                                ("REMEDIATE_STATUSPAGE_PAGE_ID", self.page_id)) if not value]
            raise NotConfigured(f"statuspage: not configured ({', '.join(missing)})")
        return self._key, self.page_id

    async def request(self, method: str, path: str, body: Any = None, *, attempts: int = 3) -> Any:
        key, page = self._require()
        where = f"/pages/{page}{path}"
        response = await call("statuspage", method, f"{self.base_url}{where}", where=where, json_body=body,
                              headers={"Authorization": f"OAuth {key}", "Accept": "application/json"},
                              timeout_s=self.timeout_s, clock=self.clock, attempts=attempts,
                              transport=self._transport)
        if response.status_code >= 300:
            raise refusal("statuspage", method, where, response)
        return response.json() if response.content else None

    async def create(self, incident: dict[str, Any]) -> dict[str, Any]:
        answer = await self.request("POST", "/incidents", {"incident": incident})
        return dict(answer)

    async def update(self, incident_id: str, incident: dict[str, Any]) -> dict[str, Any]:
        answer = await self.request("PATCH", f"/incidents/{incident_id}", {"incident": incident})
        return dict(answer)

    async def unresolved(self) -> list[dict[str, Any]]:
        return list(await self.request("GET", "/incidents/unresolved") or [])

    async def probe(self) -> ProbeResult:
        if not self._key or not self.page_id:
            return ProbeResult.absent(*[f"{name}{' (a secret)' if secret else ''}" for name, value, secret in (
                ("REMEDIATE_STATUSPAGE_API_KEY", self._key, True),
                ("REMEDIATE_STATUSPAGE_PAGE_ID", self.page_id, False)) if not value])
        try:
            page = await self.request("GET", "", attempts=1)
        except NotifyError as exc:
            text = str(exc)
            if "HTTP 401" in text or "HTTP 403" in text:
                return ProbeResult.refused(text)
            if "HTTP 404" in text:
                return ProbeResult(reachable=True, authorised=None, detail=text,
                                   missing=("a page id this key can see (REMEDIATE_STATUSPAGE_PAGE_ID)",))
            return ProbeResult.unreachable(text)
        name = page.get("name", "?") if isinstance(page, dict) else "?"
        return ProbeResult.fine(f"page '{name}' readable")


class StatuspageNotifier:
    name = "statuspage"

    def __init__(self, client: StatuspageClient, component_ids: Iterable[str] = (), *,
                 state: NotifyState | None = None) -> None:
        self.client = client
        self.component_ids = tuple(component_ids)
        self._state: NotifyState = state if state is not None else MemoryNotifyState()

    def secrets(self) -> Iterable[str]:
        return self.client.secrets()

    async def probe(self) -> ProbeResult:
        return await self.client.probe()

    async def send(self, event: IncidentEvent) -> None:
        if event.severity not in PUBLIC_SEVERITIES:
            return
        applied = event.kind is EventKind.ACTION and event.state is ActionState.APPLIED
        if applied and event.phase is Phase.CONTAIN:
            if await self._find(event) is None:
                await self._open_incident(event)
        elif applied and event.phase is Phase.RECOVER:
            await self._post(event, "monitoring", "monitoring", repeat=False)  # once, not once per recovery step
        elif event.kind is EventKind.ESCALATED:
            await self._post(event, "identified", "escalated")
        elif event.kind is EventKind.FINISHED and event.outcome is Outcome.RECOVERED:
            await self._post(event, "resolved", "resolved", components="operational")

    @property
    def _page(self) -> str:
        return self.client.page_id or ""

    async def _open_incident(self, event: IncidentEvent) -> None:
        incident = {
            "name": f"{event.service}: {event.runbook.replace('-', ' ')}"[:255],
            "status": "identified",
            "impact_override": _IMPACT[event.severity],
            "body": _BODY["identified"].format(service=event.service),
            "deliver_notifications": True,
            "component_ids": list(self.component_ids),
            "components": {c: _COMPONENT[event.severity] for c in self.component_ids},
            "metadata": {"remediator": {"incident_id": event.incident_id, "runbook": event.runbook}},
        }
        created = await self.client.create(incident)
        await self._remember(event, PublicIncident(statuspage_id=str(created["id"]), status="identified"))

    async def _post(self, event: IncidentEvent, status: str, body: str, *, components: str | None = None,
                    repeat: bool = True) -> None:
        """Update our open Statuspage incident, if there is one (never opened: not public). ``repeat`` False: not
        when it already says ``status``."""
        found = await self._find(event)
        if found is None or (not repeat and found.status == status):
            return
        update: dict[str, Any] = {"status": status, "body": _BODY[body].format(service=event.service)}
        if components and self.component_ids:
            update["components"] = {c: components for c in self.component_ids}
        await self.client.update(found.statuspage_id, update)
        await self._remember(event, PublicIncident(statuspage_id=found.statuspage_id, status=status))

    async def _find(self, event: IncidentEvent) -> StatuspageRecord | None:
        """Our open Statuspage incident for the event's incident: as recorded (by this process or an earlier one),
        else by the metadata we put on it (opened before its record was kept, or the record could not be written);
        None when there is none (never opened: not public; or already resolved)."""
        known = await asyncio.to_thread(self._state.statuspage_incident, event.incident_id, self._page)
        if known is not None:
            return None if known.status == "resolved" else known
        for item in await self.client.unresolved():
            meta = (item.get("metadata") or {}).get("remediator") or {}
            if meta.get("incident_id") == event.incident_id:
                found = PublicIncident(statuspage_id=str(item["id"]), status=str(item.get("status") or "identified"))
                await self._remember(event, found)
                return found
        return None

    async def _remember(self, event: IncidentEvent, incident: StatuspageRecord) -> None:
        try:
            await asyncio.to_thread(self._state.record_statuspage_incident, event.incident_id, self._page,
                                    incident.statuspage_id, incident.status, event.at)
        except Exception as exc:  # posted all the same; the next step finds it again by its metadata
            log.warning("statuspage: could not record incident %s of %s (%s: %s)", incident.statuspage_id,
                        event.incident_id, type(exc).__name__, redact(str(exc))[:300])


class StatuspageStatusUpdates:
    """:class:`~remediation.providers.capabilities.StatusUpdates` over Statuspage, for runbooks that post public
    status themselves (``capabilities.status_page = "statuspage"``)."""

    def __init__(self, client: StatuspageClient, component_ids: Iterable[str] = ()) -> None:
        self.client = client
        self.component_ids = tuple(component_ids)

    async def post(self, title: str, body: str, status: str) -> str:
        created = await self.client.create({"name": title[:255], "status": status, "body": body,
                                            "component_ids": list(self.component_ids)})
        return str(created["id"])

    async def update(self, incident_id: str, body: str, status: str) -> None:
        await self.client.update(incident_id, {"status": status, "body": body})

    async def probe(self) -> ProbeResult:
        return await self.client.probe()
