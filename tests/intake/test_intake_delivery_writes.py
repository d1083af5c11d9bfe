"""What one Alertmanager delivery costs the store: one transaction, a fixed handful of statements, whatever
the number of alerts it carries (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event

from remediation.intake import create_app
from remediation.providers.clock import VirtualClock
from remediation.store import Store
from tests.intake.intakekit import FIXTURE_NAMES, FakeStarter, TestClient, am_headers, fixture_json, settings

URL = "/alerts/alertmanager"


@contextmanager
def writes() -> Iterator[dict[str, list[str]]]:
    """Commits and data statements sent to any engine meanwhile."""
    seen: dict[str, list[str]] = {"commits": [], "statements": []}

    def statement(_conn: Any, _cursor: Any, sql: str, *_args: Any) -> None:
        if sql.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE", "SELECT")):
            seen["statements"].append(" ".join(sql.split()[:3]).upper())

    def commit(_conn: Any) -> None:
        seen["commits"].append("commit")

    event.listen(Engine, "before_cursor_execute", statement)
    event.listen(Engine, "commit", commit)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", statement)
        event.remove(Engine, "commit", commit)


def _with_alerts(body: dict[str, Any], copies: int) -> bytes:
    """The delivery with each of its alerts repeated under ``copies`` fingerprints (one group still)."""
    alerts = [{**a, "fingerprint": f"{a['fingerprint']}{i:04d}"} for i in range(copies) for a in body["alerts"]]
    return json.dumps({**body, "alerts": alerts}).encode()


def test_a_delivery_to_an_open_incident_is_one_transaction_whose_statements_do_not_grow_with_its_alerts(
    any_store: Store, clock: VirtualClock
) -> None:
    client = TestClient(create_app(settings(), any_store, FakeStarter(), clock=clock))
    assert client.post(URL, content=json.dumps(fixture_json(FIXTURE_NAMES[0])), headers=am_headers()).status_code == 200
    second = fixture_json(FIXTURE_NAMES[1])  # one resolved, one firing
    seen = []
    for copies in (1, 50):
        with writes() as written:
            reply = client.post(URL, content=_with_alerts(second, copies), headers=am_headers())
        assert reply.status_code == 200 and len(reply.json()["alerts"]) == 2 * copies
        assert written["commits"] == ["commit"]
        seen.append(written["statements"])
    assert seen[0] == seen[1] == ["UPDATE INCIDENTS SET", "INSERT INTO ALERTS", "INSERT INTO TIMELINE"]
    [incident] = any_store.list_incidents()
    assert incident.alert_count == 2 + 2 + 100
    assert [a["alert_count"] for a in reply.json()["alerts"]] == list(range(5, 105))
