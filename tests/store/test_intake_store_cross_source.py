"""Cross-source dedupe in the store: while an alert-opened incident of (runbook, service) is open, alerts of
other sources or groups attach to it, on SQLite and PostgreSQL, and racing replicas still open one."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from threading import Barrier

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from remediation.models import Alert, Mode, Outcome, Severity
from remediation.store import AlertStatus, IngestResult, Store, upgrade
from remediation.store.engine import make_engine, writer
from remediation.store.migrate import current
from remediation.store.tables import IncidentORM
from tests.store.store_factories import T0, full_report

AM_KEY = "a" * 64  # incident_key(runbook, service, Alertmanager groupKey)
SENTRY_KEY = "s" * 64  # incident_key(runbook, service, sentry-issue:…)
RUNBOOK = "elevated-error-rate"


def ingest(
    store: Store,
    source: str,
    *,
    key: str | None = None,
    fingerprint: str | None = None,
    status: str = "firing",
    at: timedelta = timedelta(0),
    runbook: str = RUNBOOK,
    service: str = "kamkmserve",
) -> IngestResult:
    name = "HighErrorRate" if source == "alertmanager" else "TypeError: cannot read 'id' of undefined"
    return store.ingest_alert(
        incident_key=key or (AM_KEY if source == "alertmanager" else SENTRY_KEY),
        runbook=runbook,
        service=service,
        severity=Severity.SEV2,
        alert=Alert(name=name, service=service, severity=Severity.SEV2, source=source),
        source=source,
        fingerprint=fingerprint or ("1ce1a1b9868a1b53" if source == "alertmanager" else "sentry-issue:1170820"),
        status=status,
        received_at=T0 + at,
        payload={"source": source},
        mode=Mode.APPROVE,
    )


def _opened(result: IngestResult) -> str:
    assert result.created and result.incident_id is not None
    return result.incident_id


def test_an_alert_of_another_source_attaches_to_the_open_incident_and_goes_on_its_timeline(store: Store) -> None:
    incident_id = _opened(ingest(store, "alertmanager"))
    sentry = ingest(store, "sentry", at=timedelta(seconds=3))
    assert sentry.incident_id == incident_id and not sentry.created and not sentry.suppressed
    assert sentry.alert_count == 2 and sentry.needs_run  # still one run to start, for the one incident
    assert [i.id for i in store.list_incidents()] == [incident_id]

    rows = store.incident_alerts(incident_id)
    assert [(r.source, r.incident_id) for r in rows] == [("alertmanager", incident_id), ("sentry", incident_id)]
    timeline = [(e.event, e.detail) for e in store.timeline(incident_id)]
    assert timeline == [
        ("alert HighErrorRate opened the incident (alertmanager)", "source alertmanager"),
        ("alert attached from sentry", "alert TypeError: cannot read 'id' of undefined (sentry-issue:1170820)"),
    ]


def test_repeats_of_an_attached_alert_count_but_only_its_first_goes_on_the_timeline(store: Store) -> None:
    incident_id = _opened(ingest(store, "alertmanager"))
    for i in range(3):
        ingest(store, "sentry", at=timedelta(seconds=i + 1))
    ingest(store, "sentry", fingerprint="sentry-issue:99", at=timedelta(seconds=9))  # another issue: its first
    ingest(store, "alertmanager", key="g" * 64, fingerprint="167bda77f94d0212", at=timedelta(seconds=10))

    incident = store.get_incident(incident_id)
    assert incident is not None and incident.alert_count == 6
    attached = [e.detail for e in store.timeline(incident_id) if e.event.startswith("alert attached from")]
    assert attached == [
        "alert TypeError: cannot read 'id' of undefined (sentry-issue:1170820)",
        "alert TypeError: cannot read 'id' of undefined (sentry-issue:99)",
        "alert HighErrorRate (167bda77f94d0212)",  # another Alertmanager group of the same runbook and service
    ]


def test_another_runbook_or_service_still_opens_its_own_incident(store: Store) -> None:
    first = _opened(ingest(store, "alertmanager"))
    other_service = ingest(store, "sentry", key="x" * 64, service="kamkmserve-worker")
    other_runbook = ingest(store, "sentry", key="y" * 64, runbook="database-errors")
    assert other_service.created and other_runbook.created
    assert len({first, other_service.incident_id, other_runbook.incident_id}) == 3


def test_a_resolution_from_the_attached_source_goes_to_the_shared_incident(store: Store) -> None:
    incident_id = _opened(ingest(store, "alertmanager"))
    ingest(store, "sentry", at=timedelta(seconds=1))
    resolved = ingest(store, "sentry", status="resolved", at=timedelta(seconds=30))
    assert resolved.incident_id == incident_id and resolved.alert_count == 3
    events = [e.event for e in store.timeline(incident_id)]
    assert events[-1] == "alert TypeError: cannot read 'id' of undefined resolved at source (sentry-issue:1170820)"
    incident = store.get_incident(incident_id)
    assert incident is not None and incident.is_open  # intake never closes: the run decides


def test_a_resolution_never_seen_firing_leaves_the_other_sources_incident_alone(store: Store) -> None:
    incident_id = _opened(ingest(store, "alertmanager"))
    resolved = ingest(store, "sentry", status="resolved", at=timedelta(seconds=5))
    assert resolved == IngestResult(incident_id=None)  # as before: kept, attached to nothing
    incident = store.get_incident(incident_id)
    assert incident is not None and incident.alert_count == 1 and incident.is_open


def close(store: Store, incident_id: str, at: timedelta) -> None:
    report = full_report(incident_id).model_copy(update={"finished_at": T0 + at, "outcome": Outcome.RECOVERED})
    store.close_incident(incident_id, report)


def test_after_the_shared_incident_closes_and_cools_down_the_next_source_opens_a_new_one(store: Store) -> None:
    incident_id = _opened(ingest(store, "alertmanager"))
    ingest(store, "sentry", at=timedelta(seconds=1))
    close(store, incident_id, timedelta(minutes=1))
    later = ingest(store, "sentry", at=timedelta(hours=1))
    assert later.created and later.incident_id != incident_id


def test_an_attached_source_repeating_just_after_close_is_suppressed_on_the_shared_incident(store: Store) -> None:
    """The cooldown follows the incident a key's alerts went to, not only the one it opened."""
    incident_id = _opened(ingest(store, "alertmanager"))
    ingest(store, "sentry", at=timedelta(seconds=1))
    close(store, incident_id, timedelta(minutes=1))
    repeat = ingest(store, "sentry", at=timedelta(minutes=2))
    assert repeat.incident_id == incident_id and repeat.suppressed and not repeat.needs_run
    late_resolution = ingest(store, "sentry", status="resolved", at=timedelta(minutes=3))
    assert late_resolution.incident_id == incident_id
    assert len(store.list_incidents()) == 1


def test_a_manual_incident_without_a_key_neither_absorbs_alerts_nor_blocks_them(store: Store) -> None:
    store.open_incident(
        incident_id="inc-manual000001", runbook=RUNBOOK, service="kamkmserve", severity=Severity.SEV2,
        mode=Mode.APPROVE, alert=Alert(name="manual", service="kamkmserve"),
    )  # fmt: skip
    alert = ingest(store, "alertmanager")
    assert alert.created and alert.incident_id != "inc-manual000001"
    manual = store.get_incident("inc-manual000001")
    assert manual is not None and manual.alert_count == 0


def test_the_database_admits_one_open_alert_incident_per_runbook_and_service(store: Store) -> None:
    """The partial unique index, not application code, rejects a second open keyed incident."""

    def open_keyed(incident_id: str, key: str) -> None:
        store.open_incident(
            incident_id=incident_id, runbook=RUNBOOK, service="kamkmserve", severity=Severity.SEV2,
            mode=Mode.APPROVE, alert=Alert(name="x", service="kamkmserve"), incident_key=key,
        )  # fmt: skip

    open_keyed("inc-keyed0000001", AM_KEY)
    with pytest.raises(IntegrityError):
        open_keyed("inc-keyed0000002", SENTRY_KEY)


def _replica(store: Store, source: str, barrier: Barrier, count: int) -> list[IngestResult]:
    barrier.wait()
    return [ingest(store, source, at=timedelta(milliseconds=i)) for i in range(count)]


def test_two_replicas_racing_with_two_sources_open_one_incident(make_store: Callable[[], Store]) -> None:
    replicas = [make_store(), make_store()]
    replicas[0].migrate()
    count = 20
    barrier = Barrier(2)
    with ThreadPoolExecutor(2) as pool:
        sources = ["alertmanager", "sentry"]
        futures = [pool.submit(_replica, s, src, barrier, count) for s, src in zip(replicas, sources, strict=True)]
        results = [r for f in futures for r in f.result()]

    [incident] = replicas[0].list_incidents()
    assert sum(r.created for r in results) == 1
    assert {r.incident_id for r in results} == {incident.id}
    assert incident.alert_count == 2 * count
    assert {r.source for r in replicas[0].incident_alerts(incident.id)} == {"alertmanager", "sentry"}
    opener = incident.alert.source
    other = "sentry" if opener == "alertmanager" else "alertmanager"
    timeline = [e.event for e in replicas[0].timeline(incident.id)]
    assert len(timeline) == 2, timeline  # one per source, not one per alert
    assert timeline[0].endswith(f"opened the incident ({opener})") and timeline[1] == f"alert attached from {other}"


@pytest.mark.parametrize("db_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
def test_losing_the_insert_race_to_another_source_attaches(
    store: Store, db_url: str, backend: str, integrity_errors: list[IntegrityError]
) -> None:
    """Another replica inserts the open incident for the other source while ours runs: ours waits on the
    (runbook, service) index, fails with IntegrityError when the other commits, and the retry attaches.
    PostgreSQL only: SQLite serialises writers (BEGIN IMMEDIATE), so there is no insert race to lose."""
    engine = make_engine(db_url)
    watcher = create_engine(db_url)
    try:
        with Session(writer(engine)) as other, ThreadPoolExecutor(1) as pool:
            other.add(
                IncidentORM(
                    id="inc-otherreplica", runbook=RUNBOOK, service="kamkmserve", severity="sev2", mode="approve",
                    status="open", incident_key=AM_KEY, alert={"name": "HighErrorRate", "service": "kamkmserve"},
                    opened_at=T0, alert_count=0,
                )
            )  # fmt: skip
            other.flush()  # row and index entries taken, not committed
            future = pool.submit(ingest, store, "sentry")
            _wait_for_a_lock_wait(watcher)
            assert not future.done()
            other.commit()
            result = future.result(timeout=30)
    finally:
        engine.dispose()
        watcher.dispose()
    assert result.incident_id == "inc-otherreplica" and not result.created and result.alert_count == 1
    assert len(integrity_errors) == 1
    assert store.incident_alerts("inc-otherreplica")[0].status is AlertStatus.FIRING


def _wait_for_a_lock_wait(engine: Engine, timeout_s: float = 20) -> None:
    """Until some backend of this database waits on a lock (our INSERT behind the uncommitted one)."""
    deadline = time.monotonic() + timeout_s
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    while True:
        with engine.connect() as conn:
            if conn.execute(query).scalar_one() > 0:
                return
        assert time.monotonic() < deadline, "the racing ingest never waited on the index"
        time.sleep(0.02)


def test_migration_0008_refuses_a_database_with_two_open_alert_incidents_of_one_service(db_url: str) -> None:
    upgrade(db_url, "0007")
    engine = make_engine(db_url)
    try:
        with Session(writer(engine)) as session, session.begin():
            for incident_id, key in (("inc-clash0000001", AM_KEY), ("inc-clash0000002", SENTRY_KEY)):
                session.add(
                    IncidentORM(
                        id=incident_id, runbook=RUNBOOK, service="kamkmserve", severity="sev2", mode="approve",
                        status="open", incident_key=key, alert={"name": "x", "service": "kamkmserve"},
                        opened_at=T0, alert_count=0,
                    )
                )  # fmt: skip
    finally:
        engine.dispose()
    with pytest.raises(RuntimeError, match=r"inc-clash0000001 .*inc-clash0000002 "):
        upgrade(db_url)
    assert current(db_url) == "0007"  # the failed revision left nothing behind


def test_migration_0008_gives_existing_alerts_their_incidents_key(db_url: str) -> None:
    upgrade(db_url, "0007")
    engine = make_engine(db_url)
    try:
        with writer(engine).begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO incidents (id, runbook, service, severity, mode, status, incident_key, alert, "
                    "opened_at, alert_count) VALUES ('inc-legacy000001', :rb, 'kamkmserve', 'sev2', 'approve', "
                    "'closed', :key, '{}', :at, 1)"
                ),
                {"rb": RUNBOOK, "key": AM_KEY, "at": _legacy_time(engine)},
            )
            conn.execute(
                text(
                    "INSERT INTO alerts (incident_id, source, name, fingerprint, status, routed, received_at, "
                    "payload) VALUES ('inc-legacy000001', 'alertmanager', 'HighErrorRate', 'fp', 'firing', "
                    ":yes, :at, '{}')"
                ),
                {"yes": True, "at": _legacy_time(engine)},
            )
    finally:
        engine.dispose()
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT incident_key FROM alerts")).scalars().all() == [AM_KEY]
    finally:
        engine.dispose()


def _legacy_time(engine: Engine) -> object:
    # SQLite keeps timestamps as UTC digits (see coltypes.UTCDateTime); PostgreSQL takes the aware value.
    return T0.replace(tzinfo=None).isoformat(" ") if engine.dialect.name == "sqlite" else T0
