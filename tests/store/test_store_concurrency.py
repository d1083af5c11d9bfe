"""Concurrent writers (threads sharing one Store, and separate Store instances) lose nothing."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from threading import Barrier

from remediation.models import ActionState, Phase, ScaleUp, TimelineEntry
from remediation.store import IncidentExists, Store
from tests.store.store_factories import T0, action, open_incident

THREADS = 8
WRITES = 20


def _writer(store: Store, incident_id: str, worker: int, barrier: Barrier) -> None:
    barrier.wait()  # maximise overlap
    for i in range(WRITES):
        at = T0 + timedelta(milliseconds=i)
        store.add_timeline(incident_id, TimelineEntry(at=at, phase=Phase.REMEDIATE, event=f"w{worker}-{i}"))
        record = action(ScaleUp(service="web", from_replicas=1, to_replicas=2), started_at=at)
        store.record_intent(incident_id, record)
        store.complete_action(record.id, state=ActionState.APPLIED, completed_at=at)


def test_threads_sharing_one_store_lose_no_rows(store: Store) -> None:
    incident_id = open_incident(store)
    barrier = Barrier(THREADS)
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        futures = [pool.submit(_writer, store, incident_id, w, barrier) for w in range(THREADS)]
        for future in futures:
            future.result()

    timeline = store.timeline(incident_id)
    assert len(timeline) == THREADS * WRITES
    assert {e.event for e in timeline} == {f"w{w}-{i}" for w in range(THREADS) for i in range(WRITES)}
    actions = store.actions(incident_id)
    assert len(actions) == THREADS * WRITES
    assert {a.state for a in actions} == {ActionState.APPLIED}
    assert store.dangling_actions() == []
    assert store.actions_applied_since("web", T0) == THREADS * WRITES


def test_separate_store_instances_lose_no_rows(store: Store, make_store: Callable[[], Store]) -> None:
    incident_id = open_incident(store)
    stores = [make_store() for _ in range(4)]
    barrier = Barrier(len(stores))
    with ThreadPoolExecutor(max_workers=len(stores)) as pool:
        futures = [pool.submit(_writer, s, incident_id, w, barrier) for w, s in enumerate(stores)]
        for future in futures:
            future.result()
    assert len(store.timeline(incident_id)) == len(stores) * WRITES
    assert len(store.actions(incident_id)) == len(stores) * WRITES


def test_racing_opens_of_one_incident_id_admit_exactly_one(store: Store, make_store: Callable[[], Store]) -> None:
    stores = [store, *(make_store() for _ in range(5))]
    barrier = Barrier(len(stores))

    def attempt(s: Store) -> str:
        barrier.wait()
        try:
            open_incident(s, incident_id="inc-race")
            return "opened"
        except IncidentExists:
            return "exists"

    with ThreadPoolExecutor(max_workers=len(stores)) as pool:
        results = list(pool.map(attempt, stores))
    assert sorted(results) == ["exists"] * (len(stores) - 1) + ["opened"]
    assert [s.id for s in store.list_incidents()] == ["inc-race"]
