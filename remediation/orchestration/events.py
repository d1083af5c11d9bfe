"""The event contract of Prefect's own alert → run path (deployment triggers in prefect.yaml and in ``serve``).

OSS Prefect has no inbound webhooks (docs/reference/prefect.md §4.2), so whoever receives an alert may *emit an event*
instead of creating the run; each runbook deployment has a ``DeploymentEventTrigger`` that turns a matching event into a
run. The shape is defined once here so that the emitter, prefect.yaml and the served deployments agree:

* event ``remediation.alert.fired``
* resource ``{"prefect.resource.id": "remediation.alert.<runbook>.<incident_id>", "remediation.service": service}``
  (each deployment matches only its own ``remediation.alert.<runbook>.*``, so one event starts one runbook)
* payload ``{"service", "severity", "alert_name", "incident_id"}``, all strings: a trigger parameter whose whole
  value is one expression is rendered through ``tojson``, which fails for UUIDs and datetimes and then creates
  *no run*; every template therefore ends in ``| string``.

Prefect's RunDeployment action takes no idempotency key of ours: it keys each run by the automation *invocation*
(``TriggeredAction.idempotency_key``). What it does honour is the event's id: its triggers service ignores an event
whose id it has seen in the last 30 minutes (``prefect.server.events.ordering.SEEN_EXPIRATION``, kept in the API
server's memory). So the event's id is derived from the incident (``alert_event_id``): the same alert sent again, by a
retry or by a second replica, within that window starts no second run. A duplicate that still gets through (after
the window, after an API restart, or an event with another id from another emitter) makes a run that does nothing:
``remediation.incident.refuse_duplicate`` stops it before it notes or changes anything when the incident's run holds
its lease or the incident is closed, so at most one run acts per incident. Intake's ``RunStarter`` path is
idempotent at creation; this one exists so that runs can be started from anything that can post an event. Replicas
registering the deployments at once would leave two automations per trigger (two runs per event); each prunes the
duplicates after registering (remediation.orchestration.triggers).
"""

from __future__ import annotations

import uuid
from typing import Any

ALERT_EVENT = "remediation.alert.fired"
ALERT_RESOURCE_PREFIX = "remediation.alert."
TRIGGER_FIELDS = ("service", "severity", "alert_name", "incident_id")
#: uuid5 namespace of alert event ids (fixed: every emitter, in every process and release, derives the same id).
ALERT_EVENT_NAMESPACE = uuid.UUID("6f1c0a52-5d0e-4a4e-9a51-3c2f4b1d7e90")


def alert_event_id(runbook: str, incident_id: str) -> str:
    """The id of the event that starts ``runbook`` for ``incident_id``: the same for every emission of it."""
    return str(uuid.uuid5(ALERT_EVENT_NAMESPACE, f"{runbook}/{incident_id}"))


def alert_resource_pattern(runbook: str) -> str:
    return f"{ALERT_RESOURCE_PREFIX}{runbook}.*"


def trigger_spec(runbook: str) -> dict[str, Any]:
    """The trigger as prefect.yaml spells it (``type: event``); ``serve`` validates the same dict."""
    return {
        "type": "event",
        "name": f"{runbook}: alert fired",
        "enabled": True,
        "expect": [ALERT_EVENT],
        "match": {"prefect.resource.id": alert_resource_pattern(runbook)},
        "parameters": {name: f"{{{{ event.payload.{name} | string }}}}" for name in TRIGGER_FIELDS},
    }


def alert_event(runbook: str, *, service: str, severity: str, alert_name: str, incident_id: str) -> dict[str, Any]:
    """Keyword arguments for ``prefect.events.emit_event`` that start ``runbook`` through its trigger (also the
    fields of the JSON event for ``POST /api/events``, with ``occurred`` added)."""
    return {
        "id": alert_event_id(runbook, incident_id),
        "event": ALERT_EVENT,
        "resource": {"prefect.resource.id": f"{ALERT_RESOURCE_PREFIX}{runbook}.{incident_id}",
                     "remediation.service": service},
        "payload": {"service": service, "severity": str(severity), "alert_name": alert_name,
                    "incident_id": incident_id},
    }


def emit_alert(runbook: str, *, service: str, severity: str, alert_name: str, incident_id: str) -> Any:
    """Emit the event (buffered and sent by Prefect's events worker); returns the ``Event`` or None if disabled."""
    from prefect.events import emit_event

    return emit_event(**alert_event(runbook, service=service, severity=severity, alert_name=alert_name,
                                    incident_id=incident_id))
