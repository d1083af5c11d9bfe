"""Property: whatever JSON arrives at an authenticated endpoint, the answer is never a 5xx, and nothing is
written unless the payload was valid.

Three generators per endpoint: arbitrary JSON values, arbitrary objects with the endpoint's own keys, and
the real payload with one field somewhere replaced by an arbitrary value (the shape of most real bugs).
A 200 must come from a payload the schema accepts; any 4xx must leave the store untouched.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from remediation.intake import create_app
from remediation.intake.alertmanager import AMMessage
from remediation.intake.generic import GenericAlert
from remediation.providers.clock import VirtualClock
from remediation.store import Store
from tests.intake.intakekit import (
    FIXTURE_NAMES,
    T0,
    FakeStarter,
    TestClient,
    am_headers,
    bearer,
    fixture_json,
    metric_alert,
    sentry_headers,
)
from tests.intake.intakekit import settings as intake_settings

SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
JSON = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)  # fmt: skip
AM_KEYS = ["version", "groupKey", "status", "receiver", "groupLabels", "commonLabels", "alerts", "truncatedAlerts"]
GENERIC_KEYS = ["name", "service", "status", "severity", "runbook", "fingerprint", "labels", "annotations", "summary"]
SENTRY_KEYS = ["action", "data", "installation", "actor"]
PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def keyed(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(keys), JSON | st.sampled_from(["4", "firing", "resolved", "critical"]))


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> Any:
    """``base`` with the value at one random path replaced by arbitrary JSON (or a key deleted)."""
    doc = json.loads(json.dumps(base))
    node: Any = doc
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node))) if isinstance(node, list) else []
        if not keys:
            break
        key = draw(st.sampled_from(keys))
        child = node[key]
        if isinstance(child, dict | list) and child and draw(st.booleans()):
            node = child
            continue
        if isinstance(node, dict) and draw(st.integers(0, 4)) == 0:
            del node[key]
        else:
            node[key] = draw(JSON)
        break
    return doc


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, Store, FakeStarter]]:
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('prop') / 'intake.db'}")
    store.migrate()
    starter = FakeStarter()
    yield TestClient(create_app(intake_settings(), store, starter, clock=VirtualClock(T0))), store, starter
    store.dispose()


def _footprint(store: Store) -> tuple[int, int, int]:
    incidents = store.list_incidents(limit=10_000)
    return len(incidents), sum(i.alert_count for i in incidents), len(store.unrouted_alerts(limit=10_000))


def _check(reply: Any, before: tuple[int, int, int], store: Store, valid: bool) -> None:
    assert reply.status_code in (200, 400, 409, 413, 422), (reply.status_code, reply.text)  # 409: a stale Sentry body
    if reply.status_code != 200:
        assert _footprint(store) == before, reply.text
    else:
        assert valid, f"accepted an invalid payload: {reply.text}"


def _valid(model: Any, body: Any) -> bool:
    try:
        model.model_validate(body)
    except Exception:
        return False
    return not (model is AMMessage and body.get("version") != "4")


@PROPERTY
@given(body=JSON | keyed(AM_KEYS) | mutated(fixture_json(FIXTURE_NAMES[0])) | mutated(fixture_json(FIXTURE_NAMES[1])))
def test_alertmanager_endpoint(world: tuple[TestClient, Store, FakeStarter], body: Any) -> None:
    client, store, _ = world
    before = _footprint(store)
    reply = client.post("/alerts/alertmanager", content=json.dumps(body).encode(), headers=am_headers())
    _check(reply, before, store, _valid(AMMessage, body))


@PROPERTY
@given(body=JSON | keyed(GENERIC_KEYS) | mutated({"name": "HighErrorRate", "service": "kamkmserve",
                                                  "severity": "sev2", "labels": {"a": "b"}}))  # fmt: skip
def test_generic_endpoint(world: tuple[TestClient, Store, FakeStarter], body: Any) -> None:
    client, store, _ = world
    before = _footprint(store)
    reply = client.post("/alerts/generic", content=json.dumps(body).encode(), headers=bearer())
    _check(reply, before, store, _valid(GenericAlert, body))


@PROPERTY
@given(
    body=JSON | keyed(SENTRY_KEYS) | mutated(metric_alert("critical")) | mutated(metric_alert("resolved")),
    resource=st.sampled_from(["metric_alert", "event_alert", "issue", "installation", "error"]),
)
def test_sentry_endpoint(world: tuple[TestClient, Store, FakeStarter], body: Any, resource: str) -> None:
    client, store, _ = world
    raw = json.dumps(body).encode()
    before = _footprint(store)
    reply = client.post("/alerts/sentry", content=raw, headers=sentry_headers(raw, resource))
    # Sentry bodies are validated per resource and action inside the normaliser: a 200 is "valid" there.
    _check(reply, before, store, valid=True)
    if reply.status_code == 200 and reply.json().get("status") == "ignored":
        assert _footprint(store) == before


@PROPERTY
@given(raw=st.binary(max_size=200))
def test_arbitrary_bytes(world: tuple[TestClient, Store, FakeStarter], raw: bytes) -> None:
    client, store, _ = world
    before = _footprint(store)
    for path, headers in (("/alerts/alertmanager", am_headers()), ("/alerts/generic", bearer()),
                          ("/alerts/sentry", sentry_headers(raw, "metric_alert"))):  # fmt: skip
        reply = client.post(path, content=raw, headers=headers)
        assert reply.status_code in (400, 422), (path, reply.status_code, reply.text)
    assert _footprint(store) == before
