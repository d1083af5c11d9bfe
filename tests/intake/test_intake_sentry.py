"""Sentry integration webhooks: HMAC over the raw body, replay defences, resources, and a fast answer."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from remediation.intake import create_app
from remediation.providers.clock import VirtualClock
from remediation.store import IncidentStatus, Store
from tests.helpers import local_http
from tests.intake.intakekit import (
    DEPLOYMENT,
    SENTRY_SECRET,
    T0,
    FakeStarter,
    TestClient,
    issue,
    metric_alert,
    sentry_headers,
    serve_app,
    settings,
)

URL = "/alerts/sentry"


def send(client: TestClient, body: dict[str, Any] | bytes, resource: str, **kwargs: Any) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(URL, content=raw, headers=sentry_headers(raw, resource, **kwargs))


def test_metric_alert_opens_an_incident_and_starts_its_run_after_the_reply(
    client: TestClient, store: Store, starter: FakeStarter
) -> None:
    reply = send(client, metric_alert("critical"), "metric_alert")
    assert reply.status_code == 200
    body = reply.json()
    assert body["status"] == "accepted"
    [alert] = body["alerts"]
    assert alert["outcome"] == "created" and alert["runbook"] == "elevated-error-rate"
    assert alert["severity"] == "sev1"  # action "critical"
    assert "run_id" not in alert  # the run starts in a background task, after this reply

    assert [(c[0], c[2]) for c in starter.calls] == [(DEPLOYMENT, alert["incident_id"])]
    incident = store.get_incident(alert["incident_id"])
    assert incident is not None and incident.flow_run_id == starter.runs[alert["incident_id"]]

    warning = send(client, metric_alert("warning"), "metric_alert").json()["alerts"][0]
    assert warning["outcome"] == "attached" and warning["incident_id"] == alert["incident_id"]
    resolved = send(client, metric_alert("resolved"), "metric_alert").json()["alerts"][0]
    assert resolved["outcome"] == "attached" and resolved["status"] == "resolved"
    assert len(starter.calls) == 1
    timeline = [e.event for e in store.timeline(alert["incident_id"])]
    assert "alert Too many errors resolved at source (sentry-metric-incident:4)" in timeline


def test_signature_is_checked_over_the_raw_bytes(client: TestClient, store: Store) -> None:
    """Odd spacing, key order and escapes: re-serialising the JSON would break the MAC; we never do."""
    raw = b'{ "data":{"metric_alert":{"alert_rule":{"query":"level:error","id":7,"name":"Too many \\u0065rrors"},'
    raw += b'"id":4, "date_detected" : "2026-11-26T16:03:10Z"}},   "action" :"critical"}'
    reply = client.post(URL, content=raw, headers=sentry_headers(raw, "metric_alert"))
    assert reply.status_code == 200, reply.text
    assert reply.json()["alerts"][0]["name"] == "Too many errors"


@pytest.mark.parametrize(
    ("tamper", "detail"),
    [
        (lambda h: h.update({"Sentry-Hook-Signature": "0" * 64}), "does not match"),
        (lambda h: h.pop("Sentry-Hook-Signature"), "missing Sentry-Hook-Signature"),
        (lambda h: h.update({"Sentry-Hook-Timestamp": "yesterday"}), "malformed Sentry-Hook-Timestamp"),
        (lambda h: h.pop("Sentry-Hook-Timestamp"), "malformed Sentry-Hook-Timestamp"),
    ],
    ids=["wrong-hmac", "no-signature", "bad-timestamp", "no-timestamp"],
)
def test_bad_signatures_and_timestamps_are_401(client: TestClient, store: Store, tamper: Any, detail: str) -> None:
    raw = json.dumps(metric_alert()).encode()
    headers = sentry_headers(raw, "metric_alert")
    tamper(headers)
    reply = client.post(URL, content=raw, headers=headers)
    assert reply.status_code == 401
    assert detail in reply.json()["detail"]
    assert "Sentry-Hook-Signature" in reply.headers["www-authenticate"]
    assert store.list_incidents() == []


def test_signature_with_another_secret_is_401(client: TestClient) -> None:
    assert send(client, metric_alert(), "metric_alert", secret="not-" + SENTRY_SECRET).status_code == 401


@pytest.mark.parametrize("age_s", [301, -301, 86_400])
def test_stale_or_future_timestamps_are_refused(client: TestClient, store: Store, age_s: int) -> None:
    reply = send(client, metric_alert(), "metric_alert", age_s=age_s)
    assert reply.status_code == 401 and "stale or replayed" in reply.json()["detail"]
    assert store.list_incidents() == []


def test_a_timestamp_within_the_window_is_fine(client: TestClient) -> None:
    assert send(client, metric_alert(), "metric_alert", age_s=299).status_code == 200


def test_repeated_request_id_is_an_idempotent_no_op(client: TestClient, store: Store, starter: FakeStarter) -> None:
    first = send(client, metric_alert(), "metric_alert", request_id="a" * 32)
    again = send(client, metric_alert(), "metric_alert", request_id="a" * 32)
    assert first.status_code == again.status_code == 200
    assert again.json() == {"source": "sentry", "status": "duplicate", "request_id": "a" * 32}
    [incident] = store.list_incidents()
    assert incident.alert_count == 1 and len(starter.calls) == 1


def test_a_delivery_that_failed_is_not_remembered_as_seen(client: TestClient, store: Store) -> None:
    bad = send(client, {"action": "critical", "data": {"metric_alert": {}}}, "metric_alert", request_id="b" * 32)
    assert bad.status_code == 422
    good = send(client, metric_alert(), "metric_alert", request_id="b" * 32)
    assert good.status_code == 200 and good.json()["status"] == "accepted"


def test_missing_request_id_or_resource_is_400(client: TestClient) -> None:
    raw = json.dumps(metric_alert()).encode()
    for header in ("Request-ID", "Sentry-Hook-Resource"):
        headers = sentry_headers(raw, "metric_alert")
        headers.pop(header)
        reply = client.post(URL, content=raw, headers=headers)
        assert reply.status_code == 400 and header in reply.json()["detail"]


@pytest.mark.parametrize(
    ("resource", "body"),
    [
        ("installation", {"action": "created", "data": {"installation": {}}}),
        ("comment", {"action": "created", "data": {}}),
        ("issue", issue("assigned")),
        ("metric_alert", metric_alert() | {"action": "open"}),
        ("event_alert", {"action": "other", "data": {}}),
    ],
)
def test_other_resources_and_actions_are_acknowledged_and_ignored(
    client: TestClient, store: Store, resource: str, body: dict[str, Any]
) -> None:
    reply = send(client, body, resource)
    assert reply.status_code == 200 and reply.json()["status"] == "ignored"
    assert store.list_incidents() == [] and store.unrouted_alerts() == []


def test_issue_without_a_route_is_recorded_unrouted(client: TestClient, store: Store, starter: FakeStarter) -> None:
    reply = send(client, issue("created"), "issue")
    assert reply.status_code == 200
    assert reply.json()["alerts"][0]["outcome"] == "unrouted"
    [row] = store.unrouted_alerts()
    assert row.source == "sentry" and row.fingerprint == "sentry-issue:1170820" and "no route" in (row.reason or "")
    assert starter.calls == []


def test_metric_alert_about_something_else_is_unrouted(client: TestClient, store: Store) -> None:
    reply = send(client, metric_alert(query="transaction.duration:>2s"), "metric_alert")
    assert reply.json()["alerts"][0]["outcome"] == "unrouted"


def test_event_alert_with_a_runbook_tag_routes(client: TestClient, store: Store) -> None:
    body: dict[str, Any] = {
        "action": "triggered",
        "data": {
            "triggered_rule": "5xx burst",
            "event": {
                "event_id": "e" * 32, "issue_id": 1170820, "title": "Error: 502 from upstream", "level": "fatal",
                "project": 2, "tags": [["runbook", "elevated-error-rate"], ["service", "kamkmserve"], ["x", 1]],
                "received": T0.timestamp(),
            },
        },
    }  # fmt: skip
    alert = send(client, body, "event_alert").json()["alerts"][0]
    assert alert["outcome"] == "created" and alert["severity"] == "sev1" and alert["name"] == "5xx burst"
    again = send(client, body | {"data": body["data"] | {"event": body["data"]["event"] | {"event_id": "f"}}},
                 "event_alert").json()["alerts"][0]  # fmt: skip
    assert again["outcome"] == "attached"  # same issue, another event


def test_issue_resolution_closes_nothing_but_is_recorded(client: TestClient, store: Store) -> None:
    send(client, issue("created"), "issue")
    reply = send(client, issue("resolved"), "issue")
    assert reply.status_code == 200 and reply.json()["alerts"][0]["status"] == "resolved"


def test_sentry_without_secret_is_refused(make_client: Any) -> None:
    client = make_client(settings=settings(sentry_client_secret=None))
    reply = send(client, metric_alert(), "metric_alert")
    assert reply.status_code == 503 and "REMEDIATE_SENTRY_CLIENT_SECRET" in reply.json()["detail"]


# -- a real server: the reply must not wait for the run -------------------------------------------------





def test_reply_is_sent_before_a_slow_run_start(store: Store, clock: VirtualClock) -> None:
    slow = FakeStarter(delay_s=2.0)
    app = create_app(settings(), store, slow, clock=clock)
    raw = json.dumps(metric_alert()).encode()
    with serve_app(app) as base:
        started = time.monotonic()
        reply = local_http.post(base + URL, content=raw, headers=sentry_headers(raw, "metric_alert"), timeout=10)
        elapsed = time.monotonic() - started
        assert reply.status_code == 200 and elapsed < 1.0, elapsed
        incident_id = reply.json()["alerts"][0]["incident_id"]
        deadline = time.monotonic() + 10
        while (incident := store.get_incident(incident_id)) is None or incident.flow_run_id is None:
            assert time.monotonic() < deadline, "the background start never completed"
            time.sleep(0.05)
        assert incident.status is IncidentStatus.OPEN and len(slow.calls) == 1
