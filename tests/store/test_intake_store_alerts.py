"""Store side of intake: alerts dedupe into incidents in one transaction, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

from remediation.models import Alert, Mode, Outcome, Phase, Severity
from remediation.store import AlertStatus, IncidentStatus, IngestResult, Store, downgrade, upgrade
from remediation.store.engine import make_engine
from tests.store.store_factories import T0, full_report, open_incident

KEY = "k" * 64


def ingest(
    store: Store,
    *,
    status: str = "firing",
    at: timedelta = timedelta(0),
    key: str = KEY,
    fingerprint: str = "fp-1",
    name: str = "KamkmserveHigh5xxRate",
    cooldown: float = 600,
) -> IngestResult:
    return store.ingest_alert(
        incident_key=key,
        runbook="elevated-error-rate",
        service="kamkmserve",
        severity=Severity.SEV1,
        alert=Alert(name=name, service="kamkmserve", severity=Severity.SEV1, source="alertmanager"),
        source="alertmanager",
        fingerprint=fingerprint,
        status=status,
        received_at=T0 + at,
        payload={"fingerprint": fingerprint, "status": status},
        mode=Mode.APPROVE,
        reopen_cooldown_s=cooldown,
    )


def close(store: Store, incident_id: str, at: timedelta) -> None:
    report = full_report(incident_id).model_copy(update={"finished_at": T0 + at, "outcome": Outcome.RECOVERED})
    store.close_incident(incident_id, report)


def test_first_alert_opens_an_incident_and_repeats_attach(store: Store) -> None:
    first = ingest(store)
    assert first.created and first.needs_run and not first.suppressed
    assert first.incident_id is not None and first.incident_id.startswith("inc-") and len(first.incident_id) == 16
    assert first.alert_count == 1 and first.incident_status is IncidentStatus.OPEN

    second = ingest(store, at=timedelta(seconds=5), fingerprint="fp-2")
    assert second.incident_id == first.incident_id
    assert not second.created and second.needs_run  # no run recorded yet: a retry must start it
    store.set_flow_run(first.incident_id, "run-1")
    third = ingest(store, at=timedelta(seconds=9))
    assert third.alert_count == 3 and not third.needs_run

    incident = store.get_incident(first.incident_id)
    assert incident is not None
    assert incident.incident_key == KEY and incident.mode is Mode.APPROVE and incident.severity is Severity.SEV1
    assert incident.alert_count == 3 and incident.last_alert_at == T0 + timedelta(seconds=9)
    assert incident.opened_at == T0 and incident.runbook == "elevated-error-rate"
    assert [s.alert_count for s in store.list_incidents()] == [3]

    rows = store.incident_alerts(first.incident_id)
    assert [r.fingerprint for r in rows] == ["fp-1", "fp-2", "fp-1"]
    assert all(r.routed and r.severity is Severity.SEV1 and r.runbook == "elevated-error-rate" for r in rows)
    assert rows[0].payload == {"fingerprint": "fp-1", "status": "firing"}


def test_resolved_alert_attaches_and_goes_on_the_timeline(store: Store) -> None:
    opened = ingest(store)
    resolved = ingest(store, status="resolved", at=timedelta(seconds=8), fingerprint="1ce1a1b9868a1b53")
    assert resolved.incident_id == opened.incident_id and resolved.alert_count == 2
    assert opened.incident_id is not None
    events = [(e.phase, e.event) for e in store.timeline(opened.incident_id)]
    assert (Phase.IDENTIFY, "alert KamkmserveHigh5xxRate resolved at source (1ce1a1b9868a1b53)") in events
    assert store.incident_alerts(opened.incident_id)[-1].status is AlertStatus.RESOLVED


def test_resolution_without_any_incident_is_kept_unattached(store: Store) -> None:
    result = ingest(store, status="resolved")
    assert result == IngestResult(incident_id=None)
    assert store.list_incidents() == []
    assert store.unrouted_alerts() == []  # it was routed; it just had nothing to attach to


def test_repeat_within_cooldown_after_close_is_suppressed(store: Store) -> None:
    first = ingest(store)
    assert first.incident_id is not None
    close(store, first.incident_id, timedelta(minutes=5))

    repeat = ingest(store, at=timedelta(minutes=6), cooldown=600)
    assert repeat.incident_id == first.incident_id
    assert repeat.suppressed and not repeat.created and not repeat.needs_run
    assert repeat.incident_status is IncidentStatus.CLOSED and repeat.alert_count == 2
    assert any(e.event.startswith("repeat after close") for e in store.timeline(first.incident_id))

    late_resolution = ingest(store, status="resolved", at=timedelta(minutes=7))
    assert late_resolution.incident_id == first.incident_id and not late_resolution.suppressed

    after_cooldown = ingest(store, at=timedelta(minutes=5, seconds=601), cooldown=600)
    assert after_cooldown.created and after_cooldown.incident_id != first.incident_id
    assert len(store.list_incidents()) == 2


def test_resolution_after_close_attaches_to_the_latest_incident(store: Store) -> None:
    first = ingest(store)
    assert first.incident_id is not None
    close(store, first.incident_id, timedelta(minutes=1))
    second = ingest(store, at=timedelta(hours=1))
    assert second.created
    assert second.incident_id is not None
    close(store, second.incident_id, timedelta(hours=1, minutes=1))
    resolved = ingest(store, status="resolved", at=timedelta(hours=2))
    assert resolved.incident_id == second.incident_id and not resolved.needs_run


def test_unrouted_alerts_are_recorded_newest_first(store: Store) -> None:
    for i in range(3):
        store.record_unrouted("sentry", f"issue {i}", {"i": i}, T0 + timedelta(seconds=i), "no route matched")
    store.record_unrouted("generic", "x", {}, T0 - timedelta(1), "unknown runbook", fingerprint="f", status="resolved")
    rows = store.unrouted_alerts(limit=3)
    assert [r.name for r in rows] == ["issue 2", "issue 1", "issue 0"]
    assert all(not r.routed and r.incident_id is None and r.reason == "no route matched" for r in rows)
    oldest = store.unrouted_alerts(limit=10)[-1]
    assert oldest.status is AlertStatus.RESOLVED and oldest.fingerprint == "f"
    with pytest.raises(ValueError):
        store.unrouted_alerts(limit=-1)


def test_different_keys_make_different_incidents_once_the_first_is_closed(store: Store) -> None:
    a = ingest(store, key="a" * 64)
    assert a.incident_id is not None
    close(store, a.incident_id, timedelta(minutes=1))
    b = ingest(store, key="b" * 64, at=timedelta(minutes=2))
    assert a.created and b.created and a.incident_id != b.incident_id


def test_received_at_must_be_aware(store: Store) -> None:
    with pytest.raises(ValueError, match="aware"):
        store.ingest_alert(
            incident_key=KEY, runbook="r", service="s", severity=Severity.SEV3,
            alert=Alert(name="n", service="s"), source="generic", fingerprint=None, status="firing",
            received_at=T0.replace(tzinfo=None), payload={}, mode=Mode.AUTO,
        )  # fmt: skip


def test_the_database_admits_one_open_incident_per_key(store: Store) -> None:
    """The partial unique index, not application code, rejects a second open incident for a key."""
    first = open_incident(store, incident_key=KEY)
    with pytest.raises(IntegrityError):
        open_incident(store, incident_key=KEY)
    close(store, first, timedelta(minutes=1))
    second = open_incident(store, incident_key=KEY)  # closed ones do not count
    close(store, second, timedelta(minutes=2))
    open_incident(store, incident_key=KEY)
    open_incident(store, incident_key=None)
    open_incident(store, incident_key=None)  # NULL keys never collide


def test_store_ping(store: Store) -> None:
    store.ping()


def test_upgrade_from_0001_keeps_incidents_and_downgrade_keeps_them_too(db_url: str) -> None:
    upgrade(db_url, "0001")
    incident_id = _insert_legacy_incident(db_url)  # the ORM knows columns 0001 lacks: plain SQL
    upgrade(db_url)
    new = Store(db_url)
    try:
        legacy = new.get_incident(incident_id)
        assert legacy is not None and legacy.alert_count == 0 and legacy.last_alert_at is None
        assert ingest(new, key="legacy").incident_id == incident_id
    finally:
        new.dispose()
    downgrade(db_url, "0001")
    engine = make_engine(db_url)
    try:
        inspector = inspect(engine)
        assert "alerts" not in inspector.get_table_names()
        assert {c["name"] for c in inspector.get_columns("incidents")} >= {"id", "incident_key"}
        assert "alert_count" not in {c["name"] for c in inspector.get_columns("incidents")}
    finally:
        engine.dispose()


def _insert_legacy_incident(db_url: str) -> str:
    from sqlalchemy import text

    engine = make_engine(db_url)
    # SQLite keeps timestamps as UTC digits (see coltypes.UTCDateTime); PostgreSQL takes the aware value.
    at: object = T0.replace(tzinfo=None).isoformat(" ") if engine.dialect.name == "sqlite" else T0
    values: dict[str, Any] = {
        "id": "inc-000000000001", "runbook": "elevated-error-rate", "service": "kamkmserve",
        "severity": "sev2", "mode": "auto", "status": "open", "key": "legacy",
        "alert": '{"name": "x", "service": "kamkmserve"}', "at": at,
    }  # fmt: skip
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO incidents (id, runbook, service, severity, mode, status, incident_key, alert, "
                    "opened_at) VALUES (:id, :runbook, :service, :severity, :mode, :status, :key, :alert, :at)"
                ),
                values,
            )
    finally:
        engine.dispose()
    return str(values["id"])
