"""Sentry replays: a captured delivery re-sent with fresh (unsigned) headers must never open a second incident.

Sentry's HMAC covers the body only, so a replay can carry a new ``Request-ID`` and a current
``Sentry-Hook-Timestamp``. What it cannot change is its body: the receiver judges a delivery by the body's own
time and remembers deliveries by what the body says (resource, action, subject, the body's times).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from remediation.intake import create_app
from remediation.intake.sentry import BODY_CLOCK_SKEW_S
from remediation.models import Outcome
from remediation.providers.clock import VirtualClock
from remediation.store import Store
from tests.helpers import local_http
from tests.intake.intakekit import (
    T0,
    FakeStarter,
    TestClient,
    issue,
    metric_alert,
    sentry_headers,
    sentry_time,
    serve_app,
    settings,
    wait_until,
)
from tests.store.store_factories import full_report

URL = "/alerts/sentry"


def _post(base: str, raw: bytes, resource: str, now: datetime) -> httpx.Response:
    """A delivery of exactly these body bytes, with a Request-ID and timestamp made up fresh for ``now``."""
    headers = sentry_headers(raw, resource, now=now, request_id=uuid.uuid4().hex)
    return local_http.post(base + URL, content=raw, headers=headers, timeout=10)


def _close(store: Store, incident_id: str, at: datetime) -> None:
    report = full_report(incident_id).model_copy(update={"finished_at": at, "outcome": Outcome.RECOVERED})
    store.close_incident(incident_id, report)


def test_a_replay_with_a_fresh_request_id_and_timestamp_never_opens_a_second_incident(
    store: Store, clock: VirtualClock
) -> None:
    starter = FakeStarter()
    captured = json.dumps(metric_alert("critical", at=T0)).encode()  # what an eavesdropper kept
    with serve_app(create_app(settings(), store, starter, clock=clock)) as base:
        first = _post(base, captured, "metric_alert", clock.now())
        assert first.status_code == 200 and first.json()["status"] == "accepted"
        incident_id = first.json()["alerts"][0]["incident_id"]
        wait_until(lambda: len(starter.calls) == 1, 10, "the first delivery's run being started")

        # At once: inside the age window, so it is recognised by what its body says.
        clock.advance(5)
        again = _post(base, captured, "metric_alert", clock.now())
        assert again.status_code == 200 and again.json()["status"] == "duplicate", again.text
        assert "metric_alert critical of metric incident 4" in again.json()["detail"]

        # After the run closed the incident and the reopen cooldown passed: the case the issue reproduced.
        _close(store, incident_id, clock.now())
        clock.advance(settings().reopen_cooldown_s + 1)
        late = _post(base, captured, "metric_alert", clock.now())
        assert late.status_code == 409, late.text
        assert late.json()["error"] == "stale delivery" and "606 s old (limit 300 s)" in late.json()["detail"]

    [incident] = store.list_incidents()
    assert incident.id == incident_id and incident.alert_count == 1
    assert len(starter.calls) == 1


def test_a_replay_to_a_receiver_that_never_saw_the_original_is_refused_by_the_body_time(
    store: Store, clock: VirtualClock
) -> None:
    """A restart (or another receiver process) forgets what it saw; the body's own time still gives it away."""
    starter = FakeStarter()
    captured = json.dumps(metric_alert("critical", at=T0)).encode()
    with serve_app(create_app(settings(), store, starter, clock=clock)) as base:
        assert _post(base, captured, "metric_alert", clock.now()).json()["status"] == "accepted"
    [incident] = store.list_incidents()
    _close(store, incident.id, clock.now())
    clock.advance(settings().reopen_cooldown_s + 1)

    with serve_app(create_app(settings(), store, starter, clock=clock)) as base:
        late = _post(base, captured, "metric_alert", clock.now())
        assert late.status_code == 409, late.text
        # The same rule firing again, as Sentry would send it (a new metric incident, detected now), still opens one.
        fresh = metric_alert("critical", at=clock.now())
        fresh["data"]["metric_alert"]["id"] = "5"
        reply = _post(base, json.dumps(fresh).encode(), "metric_alert", clock.now())
        assert reply.status_code == 200 and reply.json()["alerts"][0]["outcome"] == "created", reply.text
    assert len(store.list_incidents()) == 2


def _event_alert(event_id: str, received: datetime, rule: str = "5xx burst") -> dict[str, Any]:
    return {
        "action": "triggered",
        "data": {
            "triggered_rule": rule,
            "event": {"event_id": event_id, "issue_id": "1170820", "title": "Error: 502 from upstream",
                      "level": "fatal", "received": received.timestamp(),
                      "datetime": sentry_time(received - timedelta(seconds=1)),
                      "tags": [["runbook", "elevated-error-rate"], ["service", "kamkmserve"]]},
        },
    }  # fmt: skip


REPLAYABLE = {
    "event_alert": (lambda at: _event_alert("e" * 32, at), "event_alert"),
    "metric_alert": (lambda at: metric_alert("warning", at=at), "metric_alert"),
    "issue": (lambda at: issue("unresolved", at=at), "issue"),
}


@pytest.mark.parametrize(("build", "resource"), list(REPLAYABLE.values()), ids=list(REPLAYABLE))
def test_every_firing_resource_is_deduplicated_by_its_body_and_refused_once_its_body_is_stale(
    client: TestClient, store: Store, clock: VirtualClock, build: Any, resource: str
) -> None:
    raw = json.dumps(build(T0)).encode()
    first = client.post(URL, content=raw, headers=sentry_headers(raw, resource, now=clock.now()))
    assert first.status_code == 200 and first.json()["status"] == "accepted", first.text
    alerts_before = sum(i.alert_count for i in store.list_incidents()) + len(store.unrouted_alerts())

    clock.advance(60)
    replay = client.post(URL, content=raw, headers=sentry_headers(raw, resource, now=clock.now()))
    assert replay.json()["status"] == "duplicate"

    clock.advance(settings().sentry.max_age_s)  # now 360 s after the body's own time
    stale = client.post(URL, content=raw, headers=sentry_headers(raw, resource, now=clock.now()))
    assert stale.status_code == 409
    assert sum(i.alert_count for i in store.list_incidents()) + len(store.unrouted_alerts()) == alerts_before


def test_two_rules_firing_on_one_event_are_two_deliveries(client: TestClient, store: Store) -> None:
    for rule in ("5xx burst", "fatal errors"):
        raw = json.dumps(_event_alert("e" * 32, T0, rule=rule)).encode()
        reply = client.post(URL, content=raw, headers=sentry_headers(raw, "event_alert"))
        assert reply.json()["status"] == "accepted", reply.text
    [incident] = store.list_incidents()
    assert incident.alert_count == 2


@pytest.mark.parametrize(("ahead_s", "status"), [(BODY_CLOCK_SKEW_S - 1, 200), (BODY_CLOCK_SKEW_S + 1, 409),
                                                  (3600, 409)])
def test_a_body_time_ahead_of_our_clock_is_accepted_only_within_the_clock_skew_allowance(
    client: TestClient, ahead_s: float, status: int
) -> None:
    raw = json.dumps(metric_alert("critical", at=T0 + timedelta(seconds=ahead_s))).encode()
    reply = client.post(URL, content=raw, headers=sentry_headers(raw, "metric_alert"))
    assert reply.status_code == status, reply.text
    if status == 409:
        assert f"{ahead_s:.0f} s in the future (limit {BODY_CLOCK_SKEW_S:g} s)" in reply.json()["detail"]


def test_a_firing_body_without_any_time_of_its_own_is_422(client: TestClient, store: Store) -> None:
    body = metric_alert("critical")
    for field in ("date_started", "date_detected", "date_created", "date_closed"):
        del body["data"]["metric_alert"][field]
    raw = json.dumps(body).encode()
    reply = client.post(URL, content=raw, headers=sentry_headers(raw, "metric_alert"))
    assert reply.status_code == 422 and "no time of its own" in reply.json()["detail"]
    assert store.list_incidents() == []


def test_a_resolution_long_after_its_body_time_is_still_recorded(client: TestClient, store: Store) -> None:
    """An issue resolved days after its last event carries no fresher time; resolutions open nothing anyway."""
    created = json.dumps(issue("created", at=T0)).encode()
    client.post(URL, content=created, headers=sentry_headers(created, "issue"))
    resolved = json.dumps(issue("resolved", at=T0 - timedelta(days=3))).encode()
    reply = client.post(URL, content=resolved, headers=sentry_headers(resolved, "issue"))
    assert reply.status_code == 200 and reply.json()["status"] == "accepted", reply.text
