"""PagerDuty Events API v2: page people, acknowledge when one answers, resolve when the service recovered.

Shape (docs/reference/integrations.md §6): ``POST https://events.pagerduty.com/v2/enqueue``, JSON, no auth header: the
``routing_key`` in the body is the credential. ``event_action`` ``trigger`` / ``acknowledge`` / ``resolve``;
``dedup_key`` (<= 255) ties them together: ours is the incident id, so every event of one incident lands on one
PagerDuty alert per routing key, and a retried trigger never opens a second one. ``payload.summary`` (<= 1024),
``source`` and ``severity`` (critical, error, warning, info) are required for a trigger. Success is ``202``
``{"status": "success", "dedup_key": ...}``; ``400`` is invalid (not retried); ``429``/5xx are retried.

Which tier gets which key: one routing key per tier of the ladder (primary, secondary, duty manager), each a
PagerDuty service whose escalation policy reaches that person. A tier without a key cannot be paged by us; the
failure is recorded on the run's timeline (and PagerDuty's own escalation policy on the primary service still
applies).

When (severity rule: remediation.notify.ladder):
- approval requested at SEV-1/2 -> trigger on the primary (a human must decide now); at SEV-3/4 nothing (Slack
  carries the request: business-hours incidents page nobody to ask for a decision);
- the ladder's next rung at SEV-1/2 -> trigger on that tier's key; at SEV-3/4 nothing (a Slack reminder);
- a human answers (approved or denied) -> acknowledge on every tier paged for the incident;
- the run escalates -> trigger on the primary, at every severity (the automation has stopped);
- the run ends ``recovered`` -> resolve on every tier paged. Other endings leave the alert open: people own it.

Which tiers are paged per incident is kept in a :class:`~remediation.notify.state.NotifyState` (the store, in
``remediate serve``), so the process that acknowledges or resolves need not be the one that paged. A page is
recorded *before* it is sent, like the action ledger's intent: a trigger PagerDuty accepted but whose answer was
lost is still acknowledged and resolved later, and acknowledging a tier that never opened an alert is a no-op there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import httpx
from pydantic import SecretStr

from remediation.models import ApprovalAnswer, Outcome, Severity
from remediation.notify.http import NotifyError, call, refusal
from remediation.notify.ladder import pages_on_call
from remediation.notify.notifier import EventKind, IncidentEvent, Tier
from remediation.notify.probe import ProbeResult
from remediation.notify.redact import redact
from remediation.notify.state import MemoryNotifyState, NotifyState
from remediation.providers.capabilities import Clock

log = logging.getLogger("remediation.notify")

SEVERITY = {Severity.SEV1: "critical", Severity.SEV2: "error", Severity.SEV3: "warning", Severity.SEV4: "info"}
KEY_SETTING = {Tier.PRIMARY: "REMEDIATE_PAGERDUTY_ROUTING_KEY",
               Tier.SECONDARY: "REMEDIATE_PAGERDUTY_SECONDARY_ROUTING_KEY",
               Tier.DUTY_MANAGER: "REMEDIATE_PAGERDUTY_DUTY_MANAGER_ROUTING_KEY"}


class PagerDutyEvents:
    name = "pagerduty"

    def __init__(self, routing_keys: Mapping[Tier, SecretStr | str | None], *,
                 events_url: str = "https://events.pagerduty.com/v2/enqueue", timeout_s: float = 5.0,
                 clock: Clock | None = None, transport: httpx.AsyncBaseTransport | None = None,
                 state: NotifyState | None = None) -> None:
        self._keys: dict[Tier, str] = {}
        for tier, key in routing_keys.items():
            raw = key.get_secret_value() if isinstance(key, SecretStr) else key
            if raw:
                self._keys[tier] = raw
        self.events_url = events_url
        self.timeout_s = timeout_s
        self.clock = clock
        self._transport = transport
        self._state: NotifyState = state if state is not None else MemoryNotifyState()

    def secrets(self) -> Iterable[str]:
        return list(self._keys.values())

    def paged(self, incident_id: str) -> set[Tier]:
        """Tiers with an alert open for the incident (paged by this process or by an earlier one)."""
        return {Tier(tier) for tier in self._state.paged_tiers(incident_id)}

    async def send(self, event: IncidentEvent) -> None:
        if event.kind in (EventKind.APPROVAL_REQUESTED, EventKind.PAGE) and not pages_on_call(event.severity):
            return  # SEV-3/4: asking for a decision pages nobody; Slack has the request and the reminders
        if event.kind is EventKind.APPROVAL_REQUESTED:
            await self.trigger(Tier.PRIMARY, event, f"approval needed: {event.summary}")
        elif event.kind is EventKind.PAGE:
            await self.trigger(event.tier or Tier.SECONDARY, event, f"no answer: {event.summary}")
        elif event.kind is EventKind.APPROVAL_ANSWERED and event.answer in (ApprovalAnswer.APPROVED,
                                                                            ApprovalAnswer.DENIED):
            await self._all_paged("acknowledge", event)
        elif event.kind is EventKind.ESCALATED:
            await self.trigger(Tier.PRIMARY, event, f"escalated: {event.summary}")
        elif event.kind is EventKind.FINISHED and event.outcome is Outcome.RECOVERED:
            await self._all_paged("resolve", event)

    async def trigger(self, tier: Tier, event: IncidentEvent, summary: str) -> None:
        key = self._keys.get(tier)
        if key is None:
            raise NotifyError(f"pagerduty: cannot page the {tier.label}: no routing key ({KEY_SETTING[tier]})")
        body: dict[str, Any] = {
            "routing_key": key,
            "event_action": "trigger",
            "dedup_key": event.incident_id,
            "payload": {
                "summary": f"{event.service}: {summary} ({event.runbook}, {event.incident_id})"[:1024],
                "source": f"remediate:{event.service}",
                "severity": SEVERITY[event.severity],
                "timestamp": event.at.isoformat(),
                "component": event.service,
                "group": event.runbook,
                "class": event.kind.value,
                "custom_details": {"incident": event.incident_id, "severity": event.severity_label,
                                   "phase": event.phase.value, "tier": tier.value, "detail": event.detail[:2000]},
            },
            "client": "remediate",
        }
        if event.run_url:
            body["client_url"] = event.run_url
            body["links"] = [{"href": event.run_url, "text": "Prefect flow run (approve or deny here)"}]
        await self._remember(event.incident_id, tier, event.at)
        await self._enqueue(body, tier)

    async def _remember(self, incident_id: str, tier: Tier, at: datetime) -> None:
        try:
            await asyncio.to_thread(self._state.record_page, incident_id, tier.value, at)
        except Exception as exc:  # the page matters more than the bookkeeping: page anyway, say what is lost
            log.warning("pagerduty: could not record the page of the %s for %s (%s: %s); a restarted process "
                        "will not acknowledge or resolve it", tier.label, incident_id, type(exc).__name__,
                        redact(str(exc))[:300])

    async def _all_paged(self, action: str, event: IncidentEvent) -> None:
        errors: list[str] = []
        done: list[str] = []
        for tier in sorted(await asyncio.to_thread(self.paged, event.incident_id)):
            key = self._keys.get(tier)
            if key is None:  # paged before a restart whose configuration dropped this tier's key
                errors.append(f"pagerduty: cannot {action} the {tier.label}: no routing key ({KEY_SETTING[tier]})")
                continue
            try:
                await self._enqueue({"routing_key": key, "event_action": action, "dedup_key": event.incident_id},
                                    tier)
            except NotifyError as exc:  # the other tiers still hear about it
                errors.append(str(exc))
            else:
                done.append(tier.value)
        if action == "resolve" and done:
            try:
                await asyncio.to_thread(self._state.resolve_pages, event.incident_id, done, event.at)
            except Exception as exc:  # resolved at PagerDuty all the same; a repeat resolve is a no-op there
                log.warning("pagerduty: could not record the resolve for %s (%s: %s)", event.incident_id,
                            type(exc).__name__, redact(str(exc))[:300])
        if errors:
            raise NotifyError("; ".join(errors))

    async def _enqueue(self, body: dict[str, Any], tier: Tier) -> None:
        where = f"enqueue {body['event_action']} ({tier.value})"
        response = await call("pagerduty", "POST", self.events_url, where=where, json_body=body,
                              timeout_s=self.timeout_s, clock=self.clock, transport=self._transport)
        if response.status_code != 202:
            raise refusal("pagerduty", "POST", where, response)

    async def probe(self) -> ProbeResult:
        """The Events API has no read-only call: check the keys' shape and that the endpoint answers at all
        (a GET, which PagerDuty refuses without acting); whether a key is accepted shows on the first event."""
        if Tier.PRIMARY not in self._keys:
            return ProbeResult.absent(f"{KEY_SETTING[Tier.PRIMARY]} (a secret: env or a Prefect Secret block)")
        notes = [f"{tier.value} key is {len(key)} characters, not 32" for tier, key in self._keys.items()
                 if len(key) != 32]
        absent = [tier.label for tier in Tier if tier not in self._keys]
        if absent:
            notes.append(f"no routing key for the {', '.join(absent)}: the ladder cannot page them")
        try:
            response = await call("pagerduty", "GET", self.events_url, where="enqueue", attempts=1,
                                  timeout_s=self.timeout_s, transport=self._transport)
        except NotifyError as exc:
            return ProbeResult(reachable=False, authorised=None, detail="; ".join([str(exc), *notes]))
        detail = (f"events endpoint answers (HTTP {response.status_code}); keys are verified by the first event "
                  "(the Events API has no read-only call)")
        return ProbeResult(reachable=True, authorised=None, detail="; ".join([detail, *notes]))
