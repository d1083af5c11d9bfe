"""Sentry integration-platform webhooks (docs/reference/integrations.md §2.1): which deliveries are alerts, and as what.

Handled resources and actions (``Sentry-Hook-Resource`` header, ``action`` in the body):

* ``event_alert`` ``triggered``: an issue-alert rule fired on an event → firing; grouped by issue.
* ``metric_alert`` ``critical``/``warning`` → firing, ``resolved`` → resolved; grouped by the alert
  *rule*, so a flapping rule reopens within the cooldown instead of opening incident after incident.
* ``issue`` ``created``/``unresolved`` → firing, ``resolved`` → resolved; grouped by issue.

Everything else (``installation``, ``comment``, ``issue`` ``assigned``...) is acknowledged and ignored.
Metric-alert logic follows ``action``, never the integer ``status``. Ids arrive as numbers or strings
depending on the resource and Sentry version, so both are accepted and kept as strings.

Replays. Sentry's HMAC covers the body only: ``Request-ID`` and ``Sentry-Hook-Timestamp`` can be made up fresh
for a captured body, so neither can tell a replay from a delivery. What the signed body itself says can: each
alert carries a :attr:`SentryAlert.delivery_key` (resource, action, subject id and the body's own times: equal
for a replay whatever its headers) and :attr:`SentryAlert.occurred_at`, the body's own time of the change:

* ``event_alert``: the event's ``received`` (Sentry's clock), else its ``timestamp``/``datetime`` (the SDK's);
* ``metric_alert``: the latest of the incident's ``date_closed``, ``date_detected``, ``date_started``,
  ``date_created``;
* ``issue``: the latest of ``lastSeen`` and ``firstSeen``.

:func:`refuse_stale` turns away a *firing* delivery whose ``occurred_at`` is older than the age window, more
than :data:`BODY_CLOCK_SKEW_S` in the future, or missing. Resolutions are exempt: they can neither open an
incident nor start a run, and an ``issue`` ``resolved`` has no time of its own (``lastSeen`` is the last event,
often days before).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from remediation.intake.incoming import Incoming
from remediation.intake.wire import IntakeError, invalid, require_object
from remediation.store import AlertStatus

Id = str | int


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Body(_Lenient):
    action: str
    data: dict[str, Any]


class Event(_Lenient):
    event_id: Id
    issue_id: Id | None = None
    title: str = ""
    level: str | None = None
    project: Id | None = None
    environment: str | None = None
    web_url: str | None = None
    tags: list[Any] = Field(default_factory=list)  # [[key, value], ...]; {"key", "value"} tolerated
    received: datetime | None = None  # when Sentry received the event (its own clock)
    timestamp: datetime | None = None  # when the SDK says the event happened (the client's clock)
    event_datetime: datetime | None = Field(default=None, alias="datetime")  # the same, as ISO 8601


class EventAlertData(_Lenient):
    event: Event
    triggered_rule: str | None = None


class AlertRule(_Lenient):
    id: Id | None = None
    name: str | None = None
    query: str | None = None
    aggregate: str | None = None
    dataset: str | None = None


class MetricAlert(_Lenient):
    id: Id
    title: str | None = None
    projects: list[str] = Field(default_factory=list)
    alert_rule: AlertRule = Field(default_factory=AlertRule)
    date_started: datetime | None = None
    date_detected: datetime | None = None
    date_created: datetime | None = None
    date_closed: datetime | None = None


class MetricAlertData(_Lenient):
    description_title: str | None = None
    metric_alert: MetricAlert


class IssueProject(_Lenient):
    id: Id | None = None
    slug: str | None = None


class Issue(_Lenient):
    id: Id
    shortId: str | None = None
    title: str = ""
    level: str | None = None
    project: IssueProject | None = None
    firstSeen: datetime | None = None
    lastSeen: datetime | None = None


class IssueData(_Lenient):
    issue: Issue


# How far ahead of our clock a body's time may be: Sentry's clock and ours disagree by NTP's error, not minutes.
# Kept small because it adds to how long after the original a replay could still pass (see refuse_stale).
BODY_CLOCK_SKEW_S = 60.0

_METRIC = {"critical": AlertStatus.FIRING, "warning": AlertStatus.FIRING, "resolved": AlertStatus.RESOLVED}
_ISSUE = {"created": AlertStatus.FIRING, "unresolved": AlertStatus.FIRING, "resolved": AlertStatus.RESOLVED}
RESOURCES = ("event_alert", "metric_alert", "issue")


@dataclass(frozen=True)
class SentryAlert:
    """An alert from a Sentry delivery, with what its signed body says about which state change it is.

    ``delivery_key``: sha256 of (resource, action, subject id, the body's own times); two deliveries with the
    same key report the same change, so the second is a replay or a redelivery. ``occurred_at``: the body's own
    time of the change (module docstring), None when the body carries none. ``subject`` names it in messages.
    """

    incoming: Incoming
    subject: str
    delivery_key: str
    occurred_at: datetime | None


def normalize(resource: str, data: Any) -> SentryAlert | None:
    """The alert a delivery carries, or None when this resource/action is not an alert for us."""
    body = require_object(data)
    if resource not in RESOURCES:
        return None
    try:
        parsed = Body.model_validate(body)
        if resource == "event_alert":
            if parsed.action != "triggered":
                return None
            return _event_alert(EventAlertData.model_validate(parsed.data), body)
        if resource == "metric_alert":
            status = _METRIC.get(parsed.action)
            if status is None:
                return None
            return _metric_alert(MetricAlertData.model_validate(parsed.data), parsed.action, status, body)
        status = _ISSUE.get(parsed.action)
        if status is None:
            return None
        return _issue(IssueData.model_validate(parsed.data), parsed.action, status, body)
    except ValidationError as exc:
        raise invalid(exc, f"Sentry {resource} webhook") from None


def refuse_stale(alert: SentryAlert, now: datetime, max_age_s: float) -> None:
    """409 for a firing delivery whose body's own time is older than ``max_age_s`` or further ahead than
    :data:`BODY_CLOCK_SKEW_S`; 422 if it has none.

    Headers cannot show a replay (they are not signed); the body's time can. The original arrived no earlier than
    ``BODY_CLOCK_SKEW_S`` before the body's time and a replay that passes arrives no later than ``max_age_s``
    after it, so a replay comes less than ``max_age_s + BODY_CLOCK_SKEW_S`` (360 s by default) after the original.
    With the reopen cooldown longer than that (600 s by default) the replay finds its incident open, or closed
    less than a cooldown ago: even a receiver that has forgotten the original (restarted, another process) never
    opens a second incident or starts a second run from it.
    """
    if alert.incoming.status is not AlertStatus.FIRING:
        return
    if alert.occurred_at is None:
        raise IntakeError(
            422,
            "invalid payload",
            f"Sentry {alert.subject}: the body carries no time of its own, so its age (and whether it is a "
            "replay) cannot be judged",
        )
    age = (now - alert.occurred_at).total_seconds()
    if age > max_age_s:
        how_far = f"{age:.0f} s old (limit {max_age_s:g} s)"
    elif -age > BODY_CLOCK_SKEW_S:
        how_far = f"{-age:.0f} s in the future (limit {BODY_CLOCK_SKEW_S:g} s)"
    else:
        return
    raise IntakeError(
        409,
        "stale delivery",
        f"Sentry {alert.subject}: the body's own time {alert.occurred_at.isoformat()} is {how_far}: a replay, or "
        "not a time to act on",
    )


def _utc(value: datetime | None) -> datetime | None:
    # Sentry writes "Z"; a time without a zone is taken as UTC rather than compared as local time.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


def _latest(*values: datetime | None) -> datetime | None:
    present = [v for v in (_utc(value) for value in values) if v is not None]
    return max(present) if present else None


def _key(*parts: object) -> str:
    material = json.dumps(
        [p.isoformat() if isinstance(p, datetime) else p for p in parts], separators=(",", ":"), default=str
    )
    return hashlib.sha256(material.encode()).hexdigest()


def _tag_pairs(tags: list[Any]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for tag in tags:
        if isinstance(tag, list | tuple) and len(tag) == 2:
            key, value = tag
        elif isinstance(tag, dict):
            key, value = tag.get("key"), tag.get("value")
        else:
            continue
        if isinstance(key, str) and key and value is not None:
            pairs.append((key, str(value)))
    return pairs


def _labels(**values: object) -> dict[str, str]:
    return {k: str(v) for k, v in values.items() if v is not None and v != ""}


def _event_alert(data: EventAlertData, body: dict[str, Any]) -> SentryAlert:
    event = data.event
    tags = dict(_tag_pairs(event.tags))
    name = data.triggered_rule or event.title or "Sentry issue alert"
    labels = {
        **tags,
        **_labels(
            alertname=name,
            resource="event_alert",
            title=event.title,
            level=event.level,
            project=event.project,
            environment=event.environment,
        ),
    }
    issue = str(event.issue_id) if event.issue_id is not None else None
    incoming = Incoming(
        source="sentry",
        name=name,
        status=AlertStatus.FIRING,
        fingerprint=f"sentry-event:{event.event_id}",
        group=f"sentry-issue:{issue}" if issue else f"sentry-event:{event.event_id}",
        labels=labels,
        annotations=_labels(summary=event.title, web_url=event.web_url),
        payload=body,
        severity=event.level,
    )
    # Sentry's own receive time first: an SDK's clock can be wrong, and an offline client sends events late.
    occurred_at = _utc(event.received) or _utc(event.timestamp) or _utc(event.event_datetime)
    # Two rules can fire on one event: each is its own delivery, so the rule is part of the key.
    key = _key("event_alert", "triggered", str(event.event_id), data.triggered_rule, occurred_at)
    return SentryAlert(incoming, f"event_alert triggered by event {event.event_id}", key, occurred_at)


def _metric_alert(data: MetricAlertData, action: str, status: AlertStatus, body: dict[str, Any]) -> SentryAlert:
    incident = data.metric_alert
    rule = incident.alert_rule
    name = rule.name or incident.title or data.description_title or "Sentry metric alert"
    labels = _labels(
        alertname=name,
        resource="metric_alert",
        action=action,
        query=rule.query,
        aggregate=rule.aggregate,
        dataset=rule.dataset,
        project=",".join(incident.projects),
    )
    group = f"sentry-metric-rule:{rule.id}" if rule.id is not None else f"sentry-metric-incident:{incident.id}"
    incoming = Incoming(
        source="sentry",
        name=name,
        status=status,
        fingerprint=f"sentry-metric-incident:{incident.id}",
        group=group,
        labels=labels,
        annotations=_labels(summary=data.description_title),
        payload=body,
        severity=action if status is AlertStatus.FIRING else None,
    )
    times = (incident.date_started, incident.date_detected, incident.date_created, incident.date_closed)
    key = _key("metric_alert", action, str(incident.id), *(_utc(t) for t in times))
    subject = f"metric_alert {action} of metric incident {incident.id}"
    return SentryAlert(incoming, subject, key, _latest(*times))


def _issue(data: IssueData, action: str, status: AlertStatus, body: dict[str, Any]) -> SentryAlert:
    issue = data.issue
    project = issue.project.slug if issue.project else None
    name = issue.title or f"Sentry issue {issue.shortId or issue.id}"
    labels = _labels(
        alertname=name,
        resource="issue",
        action=action,
        level=issue.level,
        project=project,
        short_id=issue.shortId,
    )
    incoming = Incoming(
        source="sentry",
        name=name,
        status=status,
        fingerprint=f"sentry-issue:{issue.id}",
        group=f"sentry-issue:{issue.id}",
        labels=labels,
        annotations=_labels(summary=issue.title),
        payload=body,
        severity=issue.level,
    )
    key = _key("issue", action, str(issue.id), _utc(issue.firstSeen), _utc(issue.lastSeen))
    occurred_at = _latest(issue.firstSeen, issue.lastSeen)
    return SentryAlert(incoming, f"issue {action} of issue {issue.id}", key, occurred_at)
