"""Alertmanager webhook payload (``version`` "4") and its normalisation.

A notification is not the group's state but a per-fingerprint delta (docs/reference/integrations.md §1.4): the same
``groupKey`` arrives with both alerts firing, then one resolved and one firing, then only the last one
resolved. So every entry of ``alerts[]`` becomes its own :class:`Incoming`, keyed to the group by
``groupKey``, and the group's state is what the store accumulates on the incident.

Parsing is tolerant of fields newer Alertmanager versions add (``notification_reason``, ``routeLabels``)
and strict about the ones we use: labels and annotations must be string maps, statuses must be known.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from remediation.intake.dedupe import label_fingerprint
from remediation.intake.incoming import Incoming
from remediation.intake.wire import IntakeError, invalid, require_object
from remediation.store import AlertStatus

SUPPORTED_VERSION = "4"
_NO_END_YEAR = 1  # "0001-01-01T00:00:00Z": a firing alert whose sender gave no end


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class AMAlert(_Lenient):
    """One entry of ``alerts[]``; field names are the wire names."""

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime | None = None
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = ""


class AMMessage(_Lenient):
    version: str
    groupKey: str = Field(min_length=1)
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    truncatedAlerts: int = Field(default=0, ge=0)
    alerts: list[AMAlert]


def parse(data: Any) -> tuple[AMMessage, list[dict[str, Any]]]:
    """Validate a decoded body; also return the raw ``alerts[]`` entries, which are stored verbatim."""
    body = require_object(data)
    version = body.get("version")
    if "version" in body and version != SUPPORTED_VERSION:
        raise IntakeError(
            422,
            "unsupported version",
            f"Alertmanager webhook version {version!r} is not supported; only {SUPPORTED_VERSION!r} is",
        )
    try:
        message = AMMessage.model_validate(body)
    except ValidationError as exc:
        raise invalid(exc, "Alertmanager webhook (version 4)") from None
    return message, list(body["alerts"])


def normalize(message: AMMessage, raw_alerts: list[dict[str, Any]]) -> list[Incoming]:
    context = {
        "groupKey": message.groupKey,
        "receiver": message.receiver,
        "externalURL": message.externalURL,
        "truncatedAlerts": message.truncatedAlerts,
        "groupLabels": message.groupLabels,
    }
    incoming: list[Incoming] = []
    for alert, raw in zip(message.alerts, raw_alerts, strict=True):
        labels = alert.labels
        name = labels.get("alertname") or message.groupLabels.get("alertname") or "(unnamed alert)"
        incoming.append(
            Incoming(
                source="alertmanager",
                name=name,
                status=AlertStatus(alert.status),
                # The sender's fingerprint when given (it is the label hash), else the same hash computed here.
                fingerprint=alert.fingerprint or label_fingerprint(labels),
                group=message.groupKey,
                labels=labels,
                annotations=alert.annotations,
                starts_at=_real_time(alert.startsAt),
                payload={"alert": raw, **context},
            )
        )
    return incoming


def _real_time(value: datetime | None) -> datetime | None:
    return None if value is None or value.year == _NO_END_YEAR else value
