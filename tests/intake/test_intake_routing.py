"""Routes are data: the shipped routes load, name real deployments, and route as documented."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from remediation.catalog import RUNBOOKS
from remediation.intake.dedupe import incident_key, label_fingerprint
from remediation.intake.incoming import Incoming
from remediation.intake.routing import Routed, Routes, Unrouted, default_routes, parse_severity, route
from remediation.models import Severity
from remediation.store import AlertStatus
from tests.intake.intakekit import FIXTURE_NAMES, fixture_json

REPO = Path(__file__).resolve().parents[2]


def alert(name: str, source: str = "alertmanager", **labels: str) -> Incoming:
    return Incoming(
        source=source,  # type: ignore[arg-type]
        name=name,
        status=AlertStatus.FIRING,
        fingerprint="f",
        group="g",
        labels={"alertname": name, **labels},
        payload={},
    )


def test_every_route_names_a_deployment_in_prefect_yaml() -> None:
    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in spec["deployments"]}
    routes = default_routes()
    assert routes.routes
    for r in routes.routes:
        assert r.runbook in deployments, f"route to {r.runbook!r} has no deployment in prefect.yaml"
        # The starter asks for "<flow>/<deployment>"; flow name == deployment name == runbook.
        entrypoint = str(deployments[r.runbook]["entrypoint"])
        assert Path(entrypoint.split(":")[0]).stem.replace("_", "-") == r.runbook


def test_routes_yaml_is_package_data() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["remediation"]
    assert any(fnmatch("intake/routes.yaml", p) for p in patterns)


@pytest.mark.parametrize("name", ["KamkmserveHigh5xxRate", "HighErrorRate", "Elevated5xx", "elevated5xxrate"])
def test_error_rate_alertnames_route_to_the_runbook(name: str) -> None:
    assert route(alert(name), default_routes()) == Routed("elevated-error-rate", "kamkmserve", Severity.SEV2)


@pytest.mark.parametrize(
    ("labels", "routed"),
    [
        ({"resource": "metric_alert", "query": "level:error"}, True),
        ({"resource": "metric_alert", "query": "event.type:error environment:prod"}, True),
        ({"resource": "metric_alert", "query": "http.status_code:500"}, True),
        ({"resource": "metric_alert", "query": "", "aggregate": "failure_rate()"}, True),
        ({"resource": "metric_alert", "query": "transaction.duration:>2s", "aggregate": "p95(transaction.duration)"},
         False),
        ({"resource": "issue", "query": "level:error"}, False),
    ],
)  # fmt: skip
def test_sentry_metric_alerts_about_errors_route(labels: dict[str, str], routed: bool) -> None:
    """Only error-counting metric alerts reach the 5xx runbook (a p95 alert is the latency runbook's)."""
    result = route(alert("Too many errors", "sentry", **labels), default_routes())
    assert (isinstance(result, Routed) and result.runbook == "elevated-error-rate") is routed


def test_runbook_label_wins_and_unknown_runbook_falls_through() -> None:
    routes = default_routes()
    assert isinstance(route(alert("Anything", runbook="elevated-error-rate"), routes), Routed)
    fallthrough = route(alert("HighErrorRate", runbook="no-such-runbook"), routes)
    assert isinstance(fallthrough, Routed)  # the alertname route still applies
    unrouted = route(alert("DiskFull", runbook="no-such-runbook"), routes)
    assert isinstance(unrouted, Unrouted) and "not a known runbook" in unrouted.reason


def test_service_and_severity_labels_are_honoured() -> None:
    result = route(alert("HighErrorRate", service="checkout", severity="warning"), default_routes())
    assert result == Routed("elevated-error-rate", "checkout", Severity.SEV3)
    too_long = route(alert("HighErrorRate", service="s" * 200), default_routes())
    assert isinstance(too_long, Unrouted) and "service" in too_long.reason


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("critical", Severity.SEV1), ("CRITICAL", Severity.SEV1), ("fatal", Severity.SEV1),
        ("error", Severity.SEV2), ("high", Severity.SEV2), ("major", Severity.SEV2),
        ("warning", Severity.SEV3), ("info", Severity.SEV4), ("low", Severity.SEV4),
        ("sev1", Severity.SEV1), ("SEV-4", Severity.SEV4), (" Sev2 ", Severity.SEV2),
        ("sev5", None), ("page", None), ("", None), (None, None),
    ],
)  # fmt: skip
def test_severity_mapping(raw: str | None, expected: Severity | None) -> None:
    assert parse_severity(raw) is expected


def test_routes_are_validated() -> None:
    with pytest.raises(ValidationError, match="unknown runbook"):
        Routes.model_validate({"routes": [{"match": {"alertname": "X"}, "runbook": "nope"}]})
    with pytest.raises(ValidationError):
        Routes.model_validate({"routes": [{"match": {"alertname": "("}, "runbook": "elevated-error-rate"}]})
    with pytest.raises(ValidationError):
        Routes.model_validate({"routes": [{"match": {"alertnme": "X"}, "runbook": "elevated-error-rate"}]})
    custom = Routes.from_yaml("default_service: shop\nroutes:\n  - match: {labels: {team: web}}\n"
                              "    runbook: elevated-error-rate\n    severity: sev4\n")  # fmt: skip
    assert route(alert("Whatever", team="web"), custom) == Routed("elevated-error-rate", "shop", Severity.SEV4)
    assert isinstance(route(alert("Whatever"), custom), Unrouted)  # missing label matches as ""
    assert Routes.from_yaml("") == Routes()


def test_known_runbooks_only() -> None:
    assert {r.runbook for r in default_routes().routes} <= set(RUNBOOKS)


def test_fnv_fingerprint_reproduces_alertmanager() -> None:
    for name in FIXTURE_NAMES:
        for a in fixture_json(name)["alerts"]:
            assert label_fingerprint(a["labels"]) == a["fingerprint"]


def test_incident_key_is_stable_and_unambiguous() -> None:
    key = incident_key("elevated-error-rate", "kamkmserve", '{}:{alertname="X"}')
    assert key == incident_key("elevated-error-rate", "kamkmserve", '{}:{alertname="X"}')
    assert len(key) == 64 and int(key, 16) >= 0
    assert incident_key("a", "b,c", "d") != incident_key("a,b", "c", "d")
    seen: set[Any] = {incident_key("r", s, "g") for s in ("web", "api", "worker")}
    assert len(seen) == 3
