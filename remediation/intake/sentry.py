"""Sentry integration-platform webhooks (docs/reference/integrations.md §2.1): which deliveries are alerts, and as what.

Handled resources and actions (``Sentry-Hook-Resource`` header, ``action`` in the body):

* ``event_alert`` ``triggered``: an issue-alert rule fired on an event → firing; grouped by issue.
* ``metric_alert`` ``critical``/``warning`` → firing, ``resolved`` → resolved; grouped by the alert
  *rule*, so a flapping rule reopens within the cooldown instead of opening incident after incident.
* ``issue`` ``created``/``unresolved`` → firing, ``resolved`` → resolved; grouped by issue.

Everything else (``installation``, ``comment``, ``issue`` ``assigned``...) is acknowledged and ignored.
Metric-alert logic follows ``action``, never the integer ``status``. Ids arrive as numbers or strings
depending on the resource and Sentry version, so both are accepted and kept as strings.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from remediation.intake.incoming import Incoming
from remediation.intake.wire import invalid, require_object
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


class IssueData(_Lenient):
    issue: Issue


_METRIC = {"critical": AlertStatus.FIRING, "warning": AlertStatus.FIRING, "resolved": AlertStatus.RESOLVED}
_ISSUE = {"created": AlertStatus.FIRING, "unresolved": AlertStatus.FIRING, "resolved": AlertStatus.RESOLVED}
RESOURCES = ("event_alert", "metric_alert", "issue")


def normalize(resource: str, data: Any) -> Incoming | None:
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


def _event_alert(data: EventAlertData, body: dict[str, Any]) -> Incoming:
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
    return Incoming(
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


def _metric_alert(data: MetricAlertData, action: str, status: AlertStatus, body: dict[str, Any]) -> Incoming:
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
    return Incoming(
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


def _issue(data: IssueData, action: str, status: AlertStatus, body: dict[str, Any]) -> Incoming:
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
    return Incoming(
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
