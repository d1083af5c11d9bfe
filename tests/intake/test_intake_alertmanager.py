"""Alertmanager webhooks end to end through the app, with the real 0.25 deliveries in tests/fixtures/alertmanager."""

from __future__ import annotations

import base64
import json
from typing import Any

from remediation.intake.dedupe import label_fingerprint
from remediation.models import Mode, Outcome, Phase, Severity
from remediation.providers.clock import VirtualClock
from remediation.store import AlertStatus, IncidentStatus, Store
from tests.intake.conftest import AppFactory
from tests.intake.intakekit import (
    DEPLOYMENT,
    FIXTURE_NAMES,
    FakeStarter,
    TestClient,
    am_headers,
    bearer,
    fixture_bytes,
    fixture_json,
    settings,
)
from tests.store.store_factories import full_report

URL = "/alerts/alertmanager"


def deliver(client: TestClient, body: bytes | dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(URL, content=raw, headers=headers or am_headers())


def test_the_three_real_deliveries_make_one_incident_and_one_run(
    client: TestClient, store: Store, starter: FakeStarter, clock: VirtualClock
) -> None:
    replies = []
    for name in FIXTURE_NAMES:
        replies.append(deliver(client, fixture_bytes(name)))
        clock.advance(4)
    assert [r.status_code for r in replies] == [200, 200, 200]

    first = replies[0].json()
    assert [a["outcome"] for a in first["alerts"]] == ["created", "attached"]
    incident_id = first["alerts"][0]["incident_id"]
    run_id = first["runs"][0]["run_id"]
    assert first["runs"] == [{"incident_id": incident_id, "state": "started", "run_id": run_id}]
    assert all(a["run_id"] == run_id and a["runbook"] == "elevated-error-rate" for a in first["alerts"])
    assert [a["outcome"] for a in replies[1].json()["alerts"]] == ["attached", "attached"]
    assert [a["outcome"] for a in replies[2].json()["alerts"]] == ["attached"]
    assert replies[1].json()["runs"] == replies[2].json()["runs"] == []

    assert len(starter.calls) == 1
    deployment, parameters, key = starter.calls[0]
    assert deployment == DEPLOYMENT and key == incident_id
    assert parameters == {
        "service": "kamkmserve",
        "severity": "sev1",  # severity label "critical"
        "alert_name": "KamkmserveHigh5xxRate",
        "incident_id": incident_id,
        "mode": Mode.APPROVE.value,
    }

    [incident] = store.list_incidents()
    assert incident.id == incident_id and incident.flow_run_id == run_id
    assert incident.status is IncidentStatus.OPEN  # closing is the run's job, not intake's
    assert incident.alert_count == 5  # 2 + 2 + 1 per-fingerprint deltas
    assert incident.severity is Severity.SEV1 and incident.service == "kamkmserve"
    rows = store.incident_alerts(incident_id)
    assert [(r.fingerprint, r.status) for r in rows] == [
        ("1ce1a1b9868a1b53", AlertStatus.FIRING),
        ("167bda77f94d0212", AlertStatus.FIRING),
        ("1ce1a1b9868a1b53", AlertStatus.RESOLVED),
        ("167bda77f94d0212", AlertStatus.FIRING),
        ("167bda77f94d0212", AlertStatus.RESOLVED),
    ]
    assert rows[0].payload["groupKey"] == fixture_json(FIXTURE_NAMES[0])["groupKey"]
    assert rows[0].payload["alert"]["labels"]["instance"] == "web-1"
    events = [(e.phase, e.event) for e in store.timeline(incident_id)]
    assert (Phase.IDENTIFY, "alert KamkmserveHigh5xxRate resolved at source (1ce1a1b9868a1b53)") in events
    assert (Phase.IDENTIFY, "alert KamkmserveHigh5xxRate resolved at source (167bda77f94d0212)") in events


def test_redeliveries_never_start_a_second_run(client: TestClient, store: Store, starter: FakeStarter) -> None:
    for _ in range(3):
        assert deliver(client, fixture_bytes(FIXTURE_NAMES[0])).status_code == 200
    assert len(starter.calls) == 1
    assert len(store.list_incidents()) == 1


def test_a_failed_start_is_503_and_the_redelivery_starts_it(
    make_client: AppFactory, store: Store, starter: FakeStarter
) -> None:
    failing = FakeStarter(fail=True)
    reply = deliver(make_client(starter=failing), fixture_bytes(FIXTURE_NAMES[0]))
    assert reply.status_code == 503  # so Alertmanager redelivers
    body = reply.json()
    assert body["error"] == "run start failed" and body["runs"][0]["state"] == "failed"
    assert body["alerts"][0]["outcome"] == "created"
    [incident] = store.list_incidents()
    assert incident.flow_run_id is None and incident.is_open

    retry = deliver(make_client(starter=starter), fixture_bytes(FIXTURE_NAMES[0]))
    assert retry.status_code == 200
    assert retry.json()["runs"][0]["state"] == "started"
    assert [c[2] for c in starter.calls] == [incident.id]
    assert store.list_incidents()[0].flow_run_id == retry.json()["runs"][0]["run_id"]
    assert len(store.list_incidents()) == 1


def test_basic_auth_is_accepted(make_client: AppFactory, starter: FakeStarter) -> None:
    client = make_client(settings=settings(intake_token=None, intake_basic_user="am", intake_basic_password="pw"))
    headers = {"Authorization": "Basic " + base64.b64encode(b"am:pw").decode()}
    assert deliver(client, fixture_bytes(FIXTURE_NAMES[0]), headers).status_code == 200
    wrong = {"Authorization": "Basic " + base64.b64encode(b"am:nope").decode()}
    reply = deliver(client, fixture_bytes(FIXTURE_NAMES[0]), wrong)
    assert reply.status_code == 401 and reply.headers["www-authenticate"].startswith("Basic")


def test_unknown_alert_is_recorded_unrouted_not_dropped(client: TestClient, store: Store) -> None:
    body = fixture_json(FIXTURE_NAMES[0])
    for alert in body["alerts"]:
        alert["labels"] = {"alertname": "DiskAlmostFull", "instance": alert["labels"]["instance"]}
    body["groupKey"] = '{}:{alertname="DiskAlmostFull"}'
    reply = deliver(client, body)
    assert reply.status_code == 200
    assert [a["outcome"] for a in reply.json()["alerts"]] == ["unrouted", "unrouted"]
    assert "no route matched" in reply.json()["alerts"][0]["reason"]
    assert store.list_incidents() == []
    unrouted = store.unrouted_alerts()
    assert {r.name for r in unrouted} == {"DiskAlmostFull"} and len(unrouted) == 2
    assert {r.fingerprint for r in unrouted} == {a["fingerprint"] for a in body["alerts"]}


def test_runbook_label_routes_any_alertname_and_alerts_without_fingerprint_get_one(
    client: TestClient, store: Store
) -> None:
    body = fixture_json(FIXTURE_NAMES[0])
    body["alerts"] = body["alerts"][:1]
    body["alerts"][0]["labels"] = labels = {"alertname": "Checkout500s", "runbook": "elevated-error-rate",
                                            "service": "kamkmserve", "severity": "SEV-2"}  # fmt: skip
    body["alerts"][0]["fingerprint"] = ""
    reply = deliver(client, body)
    assert reply.status_code == 200
    alert = reply.json()["alerts"][0]
    assert alert["outcome"] == "created" and alert["severity"] == "sev2"
    assert alert["fingerprint"] == label_fingerprint(labels)


def test_resolution_of_a_group_we_never_saw_is_recorded(client: TestClient, store: Store, starter: FakeStarter) -> None:
    reply = deliver(client, fixture_bytes(FIXTURE_NAMES[2]))
    assert reply.status_code == 200
    assert reply.json()["alerts"][0]["outcome"] == "recorded"
    assert store.list_incidents() == [] and starter.calls == []


def test_after_close_repeats_are_suppressed_then_a_new_incident_opens(
    client: TestClient, store: Store, starter: FakeStarter, clock: VirtualClock
) -> None:
    first = deliver(client, fixture_bytes(FIXTURE_NAMES[0])).json()
    incident_id = first["alerts"][0]["incident_id"]
    report = full_report(incident_id).model_copy(update={"finished_at": clock.now(), "outcome": Outcome.RECOVERED})
    store.close_incident(incident_id, report)

    clock.advance(60)
    repeat = deliver(client, fixture_bytes(FIXTURE_NAMES[0])).json()
    assert [a["outcome"] for a in repeat["alerts"]] == ["suppressed", "suppressed"]
    assert repeat["runs"] == [] and len(starter.calls) == 1

    clock.advance(600)
    again = deliver(client, fixture_bytes(FIXTURE_NAMES[0])).json()
    assert again["alerts"][0]["outcome"] == "created" and again["alerts"][0]["incident_id"] != incident_id
    assert len(starter.calls) == 2 and len(store.list_incidents()) == 2


def test_newer_alertmanager_fields_are_tolerated_and_truncation_reported(client: TestClient) -> None:
    body = fixture_json(FIXTURE_NAMES[0])
    body |= {"notification_reason": "first notification", "routeLabels": {"team": "web"}, "truncatedAlerts": 3}
    reply = deliver(client, body)
    assert reply.status_code == 200 and reply.json()["truncated_alerts"] == 3


def test_version_3_is_refused_with_422(client: TestClient, store: Store) -> None:
    body = fixture_json(FIXTURE_NAMES[0]) | {"version": "3"}
    reply = deliver(client, body)
    assert reply.status_code == 422
    assert "version '3' is not supported" in reply.json()["detail"]
    assert store.list_incidents() == []


def test_wrong_types_name_the_field(client: TestClient, store: Store) -> None:
    body = fixture_json(FIXTURE_NAMES[0])
    body["alerts"][1]["labels"]["severity"] = 3
    reply = deliver(client, body)
    assert reply.status_code == 422
    assert "alerts.1.labels.severity" in reply.json()["detail"]
    assert store.list_incidents() == []  # all or nothing for a schema error


def test_bearer_token_from_the_real_headers(client: TestClient) -> None:
    assert am_headers()["Authorization"] == "Bearer example-intake-token"
    assert deliver(client, fixture_bytes(FIXTURE_NAMES[0]), bearer()).status_code == 200


def test_the_real_deliveries_on_both_backends(any_store: Store, clock: VirtualClock) -> None:
    from remediation.intake import create_app

    starter = FakeStarter()
    client = TestClient(create_app(settings(), any_store, starter, clock=clock))
    for name in FIXTURE_NAMES:
        assert deliver(client, fixture_bytes(name)).status_code == 200
    [incident] = any_store.list_incidents()
    assert incident.alert_count == 5 and incident.last_alert_at == clock.now() and len(starter.calls) == 1
    assert sum("resolved at source" in e.event for e in any_store.timeline(incident.id)) == 2
