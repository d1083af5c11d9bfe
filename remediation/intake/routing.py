"""Which runbook an alert starts, for which service, at which severity: routes are data.

``routes.yaml`` (shipped in this package) is loaded into :class:`Routes`; a deployment can pass its own
``Routes`` to ``create_app``. Decision order, first hit wins:

1. runbook: an explicit ``runbook`` (generic payload field, else the ``runbook`` label) naming a known
   runbook; else the first route whose ``match`` fits; else the alert is *unrouted* (stored with the
   reason, reported in the response, never dropped).
2. service: explicit field, ``service`` label, the route's ``service``, ``Routes.default_service``.
3. severity: explicit field, ``severity`` label, the route's ``severity``, ``Routes.default_severity``.

Match values are regular expressions that must match the *whole* value (like Alertmanager's
``match_re``); a label the alert lacks matches as the empty string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from remediation.catalog import RUNBOOKS
from remediation.intake.incoming import Incoming
from remediation.models import Severity

SERVICE_MAX = 128  # the store's service column

_SEVERITY_WORDS = {
    "critical": Severity.SEV1,
    "fatal": Severity.SEV1,
    "error": Severity.SEV2,
    "high": Severity.SEV2,
    "major": Severity.SEV2,
    "warning": Severity.SEV3,
    "warn": Severity.SEV3,
    "info": Severity.SEV4,
    "low": Severity.SEV4,
}
_SEV_LITERAL = re.compile(r"sev-?([1-4])")


def parse_severity(raw: str | None) -> Severity | None:
    """``critical``→sev1, ``error``/``high``/``major``→sev2, ``warning``→sev3, ``info``/``low``→sev4,
    ``sev1``..``sev4`` and ``SEV-1``..``SEV-4`` literally (case-insensitive); None for anything else."""
    if raw is None:
        return None
    text = raw.strip().lower()
    if (literal := _SEV_LITERAL.fullmatch(text)) is not None:
        return Severity(f"sev{literal.group(1)}")
    return _SEVERITY_WORDS.get(text)


class Match(BaseModel):
    """All given conditions must hold. Patterns are full-match regular expressions."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    alertname: re.Pattern[str] | None = None
    source: re.Pattern[str] | None = None
    labels: dict[str, re.Pattern[str]] = Field(default_factory=dict)

    def fits(self, alert: Incoming) -> bool:
        if self.alertname is not None and self.alertname.fullmatch(alert.name) is None:
            return False
        if self.source is not None and self.source.fullmatch(alert.source) is None:
            return False
        return all(p.fullmatch(alert.labels.get(k, "")) is not None for k, p in self.labels.items())


class Route(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    match: Match
    runbook: str
    severity: Severity | None = None
    service: str | None = Field(default=None, min_length=1, max_length=SERVICE_MAX)

    @field_validator("runbook")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in RUNBOOKS:
            raise ValueError(f"unknown runbook {value!r}; known: {', '.join(sorted(RUNBOOKS))}")
        return value


class Routes(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    default_service: str = Field(default="kamkmserve", min_length=1, max_length=SERVICE_MAX)
    default_severity: Severity = Severity.SEV3
    routes: tuple[Route, ...] = ()

    @classmethod
    def from_yaml(cls, text: str) -> Routes:
        data: Any = yaml.safe_load(text)
        return cls.model_validate(data if data is not None else {})


def default_routes() -> Routes:
    """The routes shipped with the package (``remediation/intake/routes.yaml``)."""
    return Routes.from_yaml(resources.files("remediation.intake").joinpath("routes.yaml").read_text("utf-8"))


@dataclass(frozen=True)
class Routed:
    runbook: str
    service: str
    severity: Severity


@dataclass(frozen=True)
class Unrouted:
    reason: str


def route(alert: Incoming, routes: Routes) -> Routed | Unrouted:
    runbook: str | None = None
    chosen: Route | None = None
    asked = alert.runbook or alert.labels.get("runbook")
    if asked and asked in RUNBOOKS:
        runbook = asked
    else:
        chosen = next((r for r in routes.routes if r.match.fits(alert)), None)
        if chosen is None:
            why = f"runbook {asked!r} is not a known runbook and no route matched" if asked else "no route matched"
            return Unrouted(f"{why} (source {alert.source}, alertname {alert.name!r})")
        runbook = chosen.runbook

    service = (
        alert.service or alert.labels.get("service") or (chosen.service if chosen else None) or routes.default_service
    )
    service = service.strip()
    if not service or len(service) > SERVICE_MAX:
        return Unrouted(f"service must be 1..{SERVICE_MAX} characters, got {len(service)}")
    severity = (
        parse_severity(alert.severity)
        or parse_severity(alert.labels.get("severity"))
        or (chosen.severity if chosen else None)
        or routes.default_severity
    )
    return Routed(runbook=runbook, service=service, severity=severity)
