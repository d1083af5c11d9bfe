"""A delivery is written in one transaction, set-based, with the decisions alert-by-alert ingest makes.

``Store.ingest_alerts`` attaches the alerts of an open incident with one UPDATE per key and one multi-row
INSERT; every other alert goes through the per-alert decision. These tests hold it to what the per-alert
path (``alerts.ingest``, one transaction per alert, as intake wrote before) leaves in the database, and to
"none lost" when deliveries of one group race, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta
from threading import Barrier
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session

from remediation.models import Alert, Mode, Outcome, Severity
from remediation.store import AlertIn, AlertStatus, IngestResult, Store, UnroutedIn
from remediation.store import alerts as store_alerts
from remediation.store.engine import make_engine, writer
from tests.store.store_factories import T0, full_report

RUNBOOK = "elevated-error-rate"
AT = T0 + timedelta(minutes=5)  # when the delivery under test arrives


def item(key: str, fingerprint: str, status: str = "firing", *, service: str = "svc-a", source: str = "alertmanager",
         at: Any = AT) -> AlertIn:  # fmt: skip
    return AlertIn(
        incident_key=key, runbook=RUNBOOK, service=service, severity=Severity.SEV2,
        alert=Alert(name="HighErrorRate", service=service, severity=Severity.SEV2, source=source), source=source,
        fingerprint=fingerprint, status=AlertStatus(status), received_at=at,
        payload={"key": key, "fingerprint": fingerprint, "status": status}, mode=Mode.APPROVE, reopen_cooldown_s=600,
    )  # fmt: skip


def unrouted(name: str) -> UnroutedIn:
    return UnroutedIn(source="alertmanager", name=name, payload={"name": name}, received_at=AT, reason="no route",
                      fingerprint=name, status=AlertStatus.FIRING)


@contextmanager
def statements() -> Iterator[list[str]]:
    """Every SQL statement sent to any engine meanwhile (transaction control left out)."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK", "PRAGMA", "SAVEPOINT")):
            seen.append(" ".join(statement.split()[:3]).upper())

    event.listen(Engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", note)


def test_a_delivery_to_an_open_incident_is_one_update_and_one_insert_per_table(store: Store) -> None:
    [opened] = store.ingest_alerts([item("k1", "fp-0", at=T0)])
    statuses = ["firing", "resolved"] * 10
    with statements() as seen:
        results = store.ingest_alerts([item("k1", f"fp-{i}", s) for i, s in enumerate(statuses)])
    assert seen == ["UPDATE INCIDENTS SET", "INSERT INTO ALERTS", "INSERT INTO TIMELINE"]
    assert {r.incident_id for r in results} == {opened.incident_id}
    assert [r.alert_count for r in results] == list(range(2, 22))  # as if written one by one
    [incident] = store.list_incidents()
    assert incident.alert_count == 21 and incident.last_alert_at == AT
    assert len(store.incident_alerts(incident.id)) == 21
    assert sum("resolved at source" in e.event for e in store.timeline(incident.id)) == 10


def test_a_delivery_opening_incidents_sends_as_many_statements_for_50_alerts_a_key_as_for_2(
    make_store: Callable[[], Store],
) -> None:
    counts = []
    for per_key in (2, 50):
        store = make_store()
        store.migrate()
        tag = f"n{per_key}"  # one database for both rounds: keys of their own
        delivery = [item(f"{tag}{key}", f"{key}-{i}", service=f"{tag}{key}") for i in range(per_key)
                    for key in ("k1", "k2")]  # fmt: skip
        with statements() as seen:
            results = store.ingest_alerts(delivery)
        assert sum(r.created for r in results) == 2 and all(r.needs_run for r in results)
        assert sorted(r.alert_count for r in results) == sorted(list(range(1, per_key + 1)) * 2)
        counts.append(len(seen))
    assert counts[0] == counts[1]


def test_a_delivery_is_stored_entirely_or_not_at_all(store: Store) -> None:
    store.ingest_alerts([item("k1", "fp-0", at=T0)])
    poisoned = AlertIn(**{**item("k1", "fp-2").__dict__, "payload": {"unserialisable": {1, 2}}})
    with pytest.raises(Exception, match=r"JSON|serializ"):
        store.ingest_alerts([item("k1", "fp-1"), unrouted("stray"), poisoned])
    [incident] = store.list_incidents()
    assert incident.alert_count == 1 and len(store.incident_alerts(incident.id)) == 1
    assert store.unrouted_alerts() == []


# -- the same store state as alert-by-alert ingest ----------------------------------------------------------


def _setup(store: Store) -> None:
    """k1 open; k2 closed a minute before the delivery's cooldown ends; kA open on svc-s (another source)."""
    store.ingest_alerts([item("k1", "a", at=T0)])
    [closed] = store.ingest_alerts([item("k2", "c", service="svc-c", at=T0)])
    assert closed.incident_id is not None
    report = full_report(closed.incident_id).model_copy(
        update={"finished_at": T0 + timedelta(minutes=1), "outcome": Outcome.RECOVERED})
    store.close_incident(closed.incident_id, report)
    store.ingest_alerts([item("kA", "s-am", service="svc-s", at=T0)])


MIXED = [
    item("k1", "a"),
    item("k3", "x", service="svc-3"),  # opens an incident
    item("k1", "a", "resolved"),
    unrouted("stray"),
    item("k2", "c", service="svc-c"),  # suppressed: its incident closed within the cooldown
    item("k3", "y", service="svc-3"),
    item("k6", "z", "resolved", service="svc-6"),  # a resolution of nothing: kept unattached
    item("kB", "s-1", service="svc-s", source="sentry"),  # another source's outage: attaches to kA's incident
    item("k1", "b"),
    item("kB", "s-1", service="svc-s", source="sentry"),
    item("k3", "x", "resolved", service="svc-3"),
]


def _alert_by_alert(db_url: str, items: list[AlertIn | UnroutedIn]) -> list[IngestResult]:
    """What intake did before: ``alerts.ingest`` (or ``record_unrouted``), one transaction per alert."""
    engine = make_engine(db_url)
    try:
        results = []
        for one in items:
            with Session(writer(engine), expire_on_commit=False) as session, session.begin():
                if isinstance(one, UnroutedIn):
                    store_alerts.record_unrouted(session, one)
                    results.append(IngestResult(incident_id=None))
                else:
                    results.append(store_alerts.ingest(session, one))
        return results
    finally:
        engine.dispose()


def _state(db_url: str, results: list[IngestResult]) -> dict[str, Any]:
    """The database and the results with incident ids replaced by (service, opened_at): ids are random."""
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, runbook, service, status, incident_key, alert_count, last_alert_at, "
                                     "opened_at FROM incidents")).all()
            name = {r.id: (r.service, str(r.opened_at)) for r in rows}
            name[None] = None
            alerts = conn.execute(text("SELECT incident_id, incident_key, source, fingerprint, status, routed, "
                                       "reason FROM alerts ORDER BY id")).all()
            notes = conn.execute(text("SELECT incident_id, event, detail FROM timeline ORDER BY at, id")).all()
    finally:
        engine.dispose()
    by_incident: dict[Any, list[tuple[Any, ...]]] = {}
    for a in alerts:
        by_incident.setdefault(name[a.incident_id], []).append(tuple(a)[1:])
    timeline: dict[Any, list[tuple[Any, ...]]] = {}
    for n in notes:
        timeline.setdefault(name[n.incident_id], []).append(tuple(n)[1:])
    return {
        "incidents": sorted(tuple(r)[1:] for r in rows),
        "alerts": {k: v if k is not None else sorted(v, key=repr) for k, v in by_incident.items()},
        "timeline": timeline,
        "results": [r.model_copy(update={"incident_id": name[r.incident_id]}) for r in results],
    }


def _wipe(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.begin() as conn:
            for table in ("timeline", "alerts", "incidents"):
                conn.execute(text(f"DELETE FROM {table}"))
    finally:
        engine.dispose()


def test_a_delivery_mixing_keys_firing_and_resolved_leaves_what_alert_by_alert_ingest_leaves(
    store: Store, db_url: str
) -> None:
    _setup(store)
    before = _state(db_url, _alert_by_alert(db_url, MIXED))
    _wipe(db_url)
    _setup(store)
    results = store.ingest_alerts(MIXED)
    assert _state(db_url, results) == before
    # The delivery does exercise every branch: open, suppress, unattached, cross-source, set-based attach.
    assert [r.created for r in results].count(True) == 1 and [r.suppressed for r in results].count(True) == 1
    assert [r.incident_id is None for r in results] == [False, False, False, True, False, False, True, False,
                                                         False, False, False]


OPEN_ONLY = [
    item("k1", "a"),
    unrouted("stray"),
    item("kA", "s-am", "resolved", service="svc-s"),
    item("k1", "b", "resolved"),
    item("k1", "c"),
]


def test_a_delivery_to_open_incidents_only_leaves_what_alert_by_alert_ingest_leaves(store: Store, db_url: str) -> None:
    """Every key open: on PostgreSQL the direct path (no ORM session) writes it; the same state as one by one."""
    _setup(store)
    before = _state(db_url, _alert_by_alert(db_url, OPEN_ONLY))
    _wipe(db_url)
    _setup(store)
    with statements() as seen:
        results = store.ingest_alerts(OPEN_ONLY)
    assert _state(db_url, results) == before
    assert seen == ["UPDATE INCIDENTS SET"] * 2 + ["INSERT INTO ALERTS", "INSERT INTO TIMELINE"]
    assert [r.alert_count for r in results] == [2, 0, 2, 3, 4]


def test_a_key_without_an_open_incident_rolls_the_direct_attempt_back(store: Store, db_url: str) -> None:
    """k1 is open and sorts first, k9 has no incident: k1's bump of the first attempt must not count twice."""
    [opened] = store.ingest_alerts([item("k1", "a", at=T0)])
    before = _state(db_url, _alert_by_alert(db_url, [item("k1", "b"), item("k9", "z", service="svc-9"),
                                                      item("k1", "c")]))
    _wipe(db_url)
    store.ingest_alerts([item("k1", "a", at=T0)])
    results = store.ingest_alerts([item("k1", "b"), item("k9", "z", service="svc-9"), item("k1", "c")])
    assert _state(db_url, results) == before
    assert [r.alert_count for r in results] == [2, 1, 3] and results[1].created
    assert opened.incident_id is not None


# -- races ---------------------------------------------------------------------------------------------------

THREADS = 6
DELIVERIES = 15
PER_DELIVERY = 8


def _deliver(store: Store, worker: int, barrier: Barrier, keys: Callable[[int], list[str]]) -> list[IngestResult]:
    barrier.wait()
    results = []
    for d in range(DELIVERIES):
        batch = [item(key, f"w{worker}-d{d}-{i}", service=key) for key in keys(d) for i in range(PER_DELIVERY)]
        results += store.ingest_alerts(batch)
    return results


def test_racing_deliveries_of_one_group_lose_no_count_and_open_one_incident(make_store: Callable[[], Store]) -> None:
    stores = [make_store() for _ in range(THREADS)]  # separate pools, as separate receiver processes
    stores[0].migrate()
    barrier = Barrier(THREADS)
    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(_deliver, s, w, barrier, lambda _d: ["k1"]) for w, s in enumerate(stores)]
        results = [r for f in futures for r in f.result()]
    [incident] = stores[0].list_incidents()
    assert sum(r.created for r in results) == 1 and {r.incident_id for r in results} == {incident.id}
    assert incident.alert_count == THREADS * DELIVERIES * PER_DELIVERY
    assert len(stores[0].incident_alerts(incident.id)) == incident.alert_count
    assert sorted(r.alert_count for r in results) == list(range(1, incident.alert_count + 1))  # no count twice


def test_deliveries_naming_the_same_keys_in_opposite_orders_do_not_deadlock(make_store: Callable[[], Store]) -> None:
    stores = [make_store() for _ in range(THREADS)]
    stores[0].migrate()
    stores[0].ingest_alerts([item("k1", "seed", service="k1", at=T0), item("k2", "seed", service="k2", at=T0)])
    barrier = Barrier(THREADS)

    def order(worker: int) -> Callable[[int], list[str]]:
        return lambda d: ["k1", "k2"] if (worker + d) % 2 else ["k2", "k1"]

    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(_deliver, s, w, barrier, order(w)) for w, s in enumerate(stores)]
        for f in futures:
            f.result()
    assert [i.alert_count for i in sorted(stores[0].list_incidents(), key=lambda i: i.service)] == [
        1 + THREADS * DELIVERIES * PER_DELIVERY
    ] * 2
