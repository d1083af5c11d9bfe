"""The generic alert endpoint's payload: one alert as a small documented JSON object (docs/intake.md).

Meant for senders with no integration of their own (a cron check, a synthetic probe, a curl during an
incident). Unknown fields are rejected rather than ignored, so a typo (``sevrity``) is a 422 that names
the field instead of an alert silently routed with defaults.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from remediation.intake.dedupe import label_fingerprint
from remediation.intake.incoming import Incoming
from remediation.intake.routing import SERVICE_MAX, parse_severity
from remediation.intake.wire import invalid, require_object
from remediation.store import AlertStatus


class GenericAlert(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=255)
    service: str = Field(min_length=1, max_length=SERVICE_MAX)
    status: Literal["firing", "resolved"] = "firing"
    severity: str | None = None
    runbook: str | None = Field(default=None, max_length=128)
    fingerprint: str | None = Field(default=None, min_length=1, max_length=255)
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    summary: str | None = None

    @field_validator("severity")
    @classmethod
    def _known_severity(cls, value: str | None) -> str | None:
        if value is not None and parse_severity(value) is None:
            raise ValueError(
                "unknown severity; use sev1..sev4, SEV-1..SEV-4, critical, error, high, major, warning, info or low"
            )
        return value


def parse(data: Any) -> GenericAlert:
    body = require_object(data)
    try:
        return GenericAlert.model_validate(body)
    except ValidationError as exc:
        raise invalid(exc, "generic alert") from None


def normalize(alert: GenericAlert, raw: dict[str, Any]) -> Incoming:
    labels = {**alert.labels, "alertname": alert.name, "service": alert.service}
    annotations = dict(alert.annotations)
    if alert.summary:
        annotations.setdefault("summary", alert.summary)
    fingerprint = alert.fingerprint or label_fingerprint(labels)
    return Incoming(
        source="generic",
        name=alert.name,
        status=AlertStatus(alert.status),
        fingerprint=fingerprint,
        group=fingerprint,
        labels=labels,
        annotations=annotations,
        payload=raw,
        runbook=alert.runbook,
        service=alert.service,
        severity=alert.severity,
    )
