"""Concurrent deliveries of one alert: one incident, one run start, every alert kept (SQLite and PostgreSQL).

Alertmanager HA peers and retries deliver the same group at the same moment; so do several receiver
processes behind a load balancer. The first two tests share one app (one process); the last gives each
thread its own app on the same database, as separate receiver processes would be, where only the
store's unique index and the starter's idempotency key keep it to one incident and one run.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier
from typing import Any, cast

import pytest

from remediation.intake import create_app
from remediation.intake.service import CONCURRENT_WRITES
from remediation.providers.clock import VirtualClock
from remediation.store import Store
from tests.intake.intakekit import FIXTURE_NAMES, FakeStarter, TestClient, am_headers, fixture_bytes, settings

THREADS = 8
DELIVERIES = 5


def _deliver(client: TestClient, barrier: Barrier) -> list[int]:
    barrier.wait()
    raw = fixture_bytes(FIXTURE_NAMES[0])
    return [client.post("/alerts/alertmanager", content=raw, headers=am_headers()).status_code
            for _ in range(DELIVERIES)]  # fmt: skip


def _check(store: Store, statuses: list[int]) -> str:
    assert set(statuses) == {200}
    [incident] = store.list_incidents()
    assert incident.alert_count == THREADS * DELIVERIES * 2  # two alerts per delivery, none lost
    assert len(store.incident_alerts(incident.id)) == incident.alert_count
    assert incident.flow_run_id is not None
    return incident.id


@pytest.mark.parametrize("shared_client", [True, False], ids=["one-client", "client-per-thread"])
def test_threads_delivering_one_group_start_one_run(any_store: Store, clock: VirtualClock, shared_client: bool) -> None:
    starter = FakeStarter(delay_s=0.2)  # a slow start keeps the incident "needs_run" while others arrive
    app = create_app(settings(), any_store, starter, clock=clock)
    barrier = Barrier(THREADS)
    with TestClient(app) as shared, ThreadPoolExecutor(THREADS) as pool:
        clients = [shared if shared_client else TestClient(app) for _ in range(THREADS)]
        futures = [pool.submit(_deliver, c, barrier) for c in clients]
        statuses = [s for f in futures for s in f.result()]
    incident_id = _check(any_store, statuses)
    assert [c[2] for c in starter.calls] == [incident_id]  # exactly one start call


def test_separate_receivers_on_one_database_make_one_incident_and_one_run(
    any_store: Store, any_db_url: str, clock: VirtualClock
) -> None:
    prefect = FakeStarter(delay_s=0.05)  # one "Prefect": idempotent on the incident id across receivers
    stores = [Store(any_db_url) for _ in range(THREADS)]
    try:
        apps = [create_app(settings(), s, prefect, clock=clock) for s in stores]
        barrier = Barrier(THREADS)
        with ThreadPoolExecutor(THREADS) as pool:
            futures = [pool.submit(_deliver, TestClient(app), barrier) for app in apps]
            statuses = [s for f in futures for s in f.result()]
    finally:
        for s in stores:
            s.dispose()
    incident_id = _check(any_store, statuses)
    assert {c[2] for c in prefect.calls} == {incident_id}
    assert list(prefect.runs) == [incident_id]  # however many receivers asked, one run exists


class _SlowStore:
    """Wraps a store: ``ingest_alerts`` holds its caller a moment and records how many run at once."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self.running = self.most = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def ingest_alerts(self, items: Any) -> Any:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(0.02)
            return self._store.ingest_alerts(items)
        finally:
            with self._lock:
                self.running -= 1


def test_one_receiver_writes_at_most_concurrent_writes_deliveries_at_once(store: Store, clock: VirtualClock) -> None:
    """More deliveries in flight than the store keeps connections: the rest wait for a write slot (no overflow
    connection is opened and closed for them), and every alert is kept."""
    slow = _SlowStore(store)
    app = create_app(settings(), cast(Store, slow), FakeStarter(), clock=clock)
    in_flight = CONCURRENT_WRITES * 2 + 4  # within Starlette's 40 threads
    barrier = Barrier(in_flight)

    def deliver(client: TestClient) -> int:
        barrier.wait()
        return client.post("/alerts/alertmanager", content=fixture_bytes(FIXTURE_NAMES[0]),
                           headers=am_headers()).status_code  # fmt: skip

    with TestClient(app) as client, ThreadPoolExecutor(in_flight) as pool:
        statuses = list(pool.map(deliver, [client] * in_flight))
    assert set(statuses) == {200}
    assert 1 < slow.most <= CONCURRENT_WRITES
    [incident] = store.list_incidents()
    assert incident.alert_count == in_flight * 2
