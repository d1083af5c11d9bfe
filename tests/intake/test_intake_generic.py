"""The generic endpoint: the documented one-alert JSON shape (docs/intake.md)."""

from __future__ import annotations

from typing import Any

import pytest

from remediation.models import Severity
from remediation.store import Store
from tests.intake.intakekit import DEPLOYMENT, FakeStarter, TestClient, bearer

URL = "/alerts/generic"
MINIMAL = {"name": "HighErrorRate", "service": "kamkmserve"}


def post(client: TestClient, body: Any, headers: dict[str, str] | None = None) -> Any:
    return client.post(URL, json=body, headers=headers if headers is not None else bearer())


def test_minimal_alert_opens_an_incident_and_starts_a_run(
    client: TestClient, store: Store, starter: FakeStarter
) -> None:
    reply = post(client, MINIMAL)
    assert reply.status_code == 200
    [alert] = reply.json()["alerts"]
    assert alert["outcome"] == "created" and alert["severity"] == "sev2"  # the route's default
    assert alert["run_id"] == starter.runs[alert["incident_id"]]
    assert starter.calls[0][0] == DEPLOYMENT and starter.calls[0][1]["alert_name"] == "HighErrorRate"
    assert post(client, MINIMAL).json()["alerts"][0]["outcome"] == "attached"
    assert post(client, MINIMAL | {"status": "resolved"}).json()["alerts"][0]["outcome"] == "attached"
    assert len(starter.calls) == 1


def test_full_shape(client: TestClient, store: Store) -> None:
    body = {
        "name": "Checkout failing",
        "service": "kamkmserve",
        "status": "firing",
        "severity": "SEV-1",
        "runbook": "elevated-error-rate",
        "fingerprint": "synthetic-checkout",
        "labels": {"probe": "blackbox", "region": "eu"},
        "annotations": {"dashboard": "https://grafana.example/d/1"},
        "summary": "synthetic checkout got 3 x 502",
    }
    alert = post(client, body).json()["alerts"][0]
    assert alert["outcome"] == "created" and alert["fingerprint"] == "synthetic-checkout"
    incident = store.get_incident(alert["incident_id"])
    assert incident is not None and incident.severity is Severity.SEV1
    assert incident.alert.annotations["summary"] == "synthetic checkout got 3 x 502"
    assert incident.alert.labels["probe"] == "blackbox"
    # The same fingerprint with other labels is the same alert group.
    same = post(client, body | {"labels": {}}).json()["alerts"][0]
    assert same["incident_id"] == alert["incident_id"]


def test_services_are_separate_incidents(client: TestClient, starter: FakeStarter) -> None:
    a = post(client, MINIMAL).json()["alerts"][0]
    b = post(client, MINIMAL | {"service": "kamkmserve-worker"}).json()["alerts"][0]
    assert a["incident_id"] != b["incident_id"] and len(starter.calls) == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"service": "kamkmserve"}, "name"),
        ({"name": "x"}, "service"),
        (MINIMAL | {"status": "open"}, "status"),
        (MINIMAL | {"severity": "meh"}, "severity"),
        (MINIMAL | {"labels": {"a": 1}}, "labels.a"),
        (MINIMAL | {"labels": ["a"]}, "labels"),
        (MINIMAL | {"sevrity": "sev1"}, "sevrity"),
        (MINIMAL | {"service": "s" * 129}, "service"),
        (MINIMAL | {"name": ""}, "name"),
        (MINIMAL | {"name": 5}, "name"),
    ],
)
def test_schema_errors_are_422_and_name_the_field(
    client: TestClient, store: Store, body: dict[str, Any], field: str
) -> None:
    reply = post(client, body)
    assert reply.status_code == 422
    assert field in reply.json()["detail"]
    assert reply.json()["errors"]
    assert store.list_incidents() == []


def test_unknown_runbook_and_unknown_name_are_recorded_unrouted(client: TestClient, store: Store) -> None:
    reply = post(client, {"name": "DiskFull", "service": "kamkmserve", "runbook": "disk-cleanup"})
    assert reply.status_code == 200
    alert = reply.json()["alerts"][0]
    assert alert["outcome"] == "unrouted" and "'disk-cleanup' is not a known runbook" in alert["reason"]
    assert store.unrouted_alerts()[0].name == "DiskFull"
    assert store.list_incidents() == []


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Token example-intake-token"},
     {"Authorization": "Basic !!!"}, {"Authorization": "Bearer"}],
    ids=["missing", "wrong", "scheme", "basic-not-configured", "empty"],
)  # fmt: skip
def test_authentication_failures_are_401(client: TestClient, store: Store, headers: dict[str, str]) -> None:
    reply = post(client, MINIMAL, headers)
    assert reply.status_code == 401
    assert reply.headers["www-authenticate"] == 'Bearer realm="remediation-intake"'
    assert store.list_incidents() == []


def test_unicode_is_stored_and_unstorable_strings_refused_on_both_backends(any_store: Store) -> None:
    """PostgreSQL rejects NUL in text and JSONB; the receiver refuses it up front (400), not as a 503."""
    from remediation.intake import create_app
    from tests.intake.intakekit import settings

    client = TestClient(create_app(settings(), any_store, FakeStarter()))
    body = MINIMAL | {"summary": "5xx на чекауте 🔥", "labels": {"régión": "eu-🌍"}}
    reply = post(client, body)
    assert reply.status_code == 200
    incident = any_store.get_incident(reply.json()["alerts"][0]["incident_id"])
    assert incident is not None and incident.alert.labels["régión"] == "eu-🌍"
    for bad in (b'{"name": "x\\u0000", "service": "kamkmserve"}', b'{"name": "\\udfff", "service": "kamkmserve"}'):
        refused = client.post(URL, content=bad, headers=bearer())
        assert refused.status_code == 400
    assert len(any_store.list_incidents()) == 1
