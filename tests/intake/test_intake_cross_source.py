"""One outage, two sources: an Alertmanager alert and a Sentry webhook routed to the same runbook and service
make one incident and one run, and the incident's timeline names both sources."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from threading import Barrier
from typing import Any

import httpx

from remediation.intake import create_app
from remediation.providers.clock import VirtualClock
from remediation.store import Store
from tests.intake.intakekit import (
    DEPLOYMENT,
    T0,
    FakeStarter,
    TestClient,
    am_headers,
    fixture_json,
    metric_alert,
    sentry_headers,
    settings,
)


def one_alertmanager_alert() -> bytes:
    """The real first delivery, cut to its first alert (web-1's KamkmserveHigh5xxRate)."""
    body: dict[str, Any] = fixture_json("01-firing-two-alerts.json")
    body["alerts"] = body["alerts"][:1]
    return json.dumps(body).encode()


def post_alertmanager(client: TestClient) -> httpx.Response:
    return client.post("/alerts/alertmanager", content=one_alertmanager_alert(), headers=am_headers())


def post_sentry(client: TestClient, action: str = "critical", *, at: datetime = T0) -> httpx.Response:
    raw = json.dumps(metric_alert(action, at=at)).encode()
    return client.post("/alerts/sentry", content=raw, headers=sentry_headers(raw, "metric_alert"))


def test_alertmanager_then_sentry_for_one_runbook_and_service_is_one_incident_with_one_run(
    client: TestClient, store: Store, starter: FakeStarter
) -> None:
    am = post_alertmanager(client)
    assert am.status_code == 200
    [first] = am.json()["alerts"]
    assert first["outcome"] == "created" and first["runbook"] == "elevated-error-rate"

    sentry = post_sentry(client)
    assert sentry.status_code == 200
    [second] = sentry.json()["alerts"]
    assert second["outcome"] == "attached" and second["incident_id"] == first["incident_id"]
    assert second["alert_count"] == 2

    [incident] = store.list_incidents()
    assert incident.alert_count == 2 and incident.service == "kamkmserve"
    assert [(c[0], c[2]) for c in starter.calls] == [(DEPLOYMENT, incident.id)]  # one run, started once
    assert incident.flow_run_id == starter.runs[incident.id]
    assert [(a.source, a.incident_id) for a in store.incident_alerts(incident.id)] == [
        ("alertmanager", incident.id),
        ("sentry", incident.id),
    ]
    events = [e.event for e in store.timeline(incident.id)]
    assert "alert KamkmserveHigh5xxRate opened the incident (alertmanager)" in events
    assert "alert attached from sentry" in events
    [attached] = [e for e in store.timeline(incident.id) if e.event == "alert attached from sentry"]
    assert attached.detail == "alert Too many errors (sentry-metric-incident:4)"


def test_repeated_sentry_deliveries_count_but_add_no_timeline_rows(
    client: TestClient, store: Store, starter: FakeStarter
) -> None:
    post_alertmanager(client)
    # Three changes of one Sentry metric incident (an identical body twice would be refused as a replay).
    for action, at in (("critical", T0), ("warning", T0), ("critical", T0 - timedelta(seconds=5))):
        assert post_sentry(client, action, at=at).json()["alerts"][0]["outcome"] == "attached"
    [incident] = store.list_incidents()
    assert incident.alert_count == 4
    assert [e.event for e in store.timeline(incident.id)].count("alert attached from sentry") == 1
    assert len(starter.calls) == 1


def test_sentry_first_then_alertmanager_attaches_the_other_way_round(
    client: TestClient, store: Store, starter: FakeStarter
) -> None:
    opened = post_sentry(client).json()["alerts"][0]
    attached = post_alertmanager(client).json()["alerts"][0]
    assert opened["outcome"] == "created" and attached["outcome"] == "attached"
    assert attached["incident_id"] == opened["incident_id"]
    assert "alert attached from alertmanager" in [e.event for e in store.timeline(opened["incident_id"])]
    assert len(starter.calls) == 1


def test_two_replicas_receiving_the_two_sources_at_once_make_one_incident_and_one_run(
    any_store: Store, any_db_url: str, clock: VirtualClock
) -> None:
    prefect = FakeStarter(delay_s=0.05)  # one Prefect API, idempotent on the incident id across replicas
    replicas = [Store(any_db_url), Store(any_db_url)]
    try:
        clients = [TestClient(create_app(settings(), s, prefect, clock=clock)) for s in replicas]
        barrier = Barrier(2)

        def deliver(client: TestClient, send: Any) -> int:
            barrier.wait()
            status: int = send(client).status_code
            return status

        with ThreadPoolExecutor(2) as pool:
            futures = [
                pool.submit(deliver, clients[0], post_alertmanager),
                pool.submit(deliver, clients[1], post_sentry),
            ]
            statuses = [f.result() for f in futures]
    finally:
        for s in replicas:
            s.dispose()
    assert statuses == [200, 200]
    [incident] = any_store.list_incidents()
    assert incident.alert_count == 2
    assert {a.source for a in any_store.incident_alerts(incident.id)} == {"alertmanager", "sentry"}
    assert list(prefect.runs) == [incident.id]  # however many replicas asked, one run exists
    events = [e.event for e in any_store.timeline(incident.id)]
    assert len(events) == 2 and any(e.startswith("alert attached from ") for e in events)
