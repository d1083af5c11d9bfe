"""The one shape every source is normalised into before routing and dedupe.

Each source module (``alertmanager``, ``sentry``, ``generic``) turns a delivery into zero or more
:class:`Incoming` values; nothing downstream knows which wire format an alert came in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from remediation.store import AlertStatus

Source = Literal["alertmanager", "sentry", "generic"]


@dataclass(frozen=True)
class Incoming:
    """One alert state change from a source.

    ``fingerprint`` names this alert at its source (Alertmanager's label hash, a Sentry event or issue);
    ``group`` is the grouping fingerprint an incident is keyed on, together with runbook and service
    (Alertmanager's ``groupKey``; a Sentry issue or metric-alert rule). ``labels`` are what routes match
    (``alertname`` is always set); ``runbook``/``service``/``severity`` are explicit values from the
    payload that win over labels (only the generic endpoint has them). ``payload`` is kept verbatim.
    """

    source: Source
    name: str
    status: AlertStatus
    fingerprint: str
    group: str
    labels: Mapping[str, str]
    payload: dict[str, Any]
    annotations: Mapping[str, str] = field(default_factory=dict)
    starts_at: datetime | None = None
    runbook: str | None = None
    service: str | None = None
    severity: str | None = None
