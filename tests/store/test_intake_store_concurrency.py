"""Racing ingests of one incident key open exactly one incident and lose no alert.

Threads share one Store and separate Store instances; then separate OS processes, which is what several
receiver workers are. On PostgreSQL the losers of the race really do hit the partial unique index and
retry; on SQLite ``BEGIN IMMEDIATE`` serialises them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from threading import Barrier

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from remediation.models import Alert, Mode, Severity
from remediation.store import IngestResult, Store
from remediation.store.engine import make_engine, writer
from remediation.store.tables import IncidentORM
from tests.store.store_factories import T0

THREADS = 8
INGESTS = 50
KEY = "c" * 64
REPO = Path(__file__).resolve().parents[2]


def _ingest(store: Store, worker: int, i: int) -> IngestResult:
    return store.ingest_alert(
        incident_key=KEY,
        runbook="elevated-error-rate",
        service="kamkmserve",
        severity=Severity.SEV2,
        alert=Alert(name="HighErrorRate", service="kamkmserve", severity=Severity.SEV2),
        source="alertmanager",
        fingerprint=f"w{worker}-{i}",
        status="firing",
        received_at=T0 + timedelta(milliseconds=i),
        payload={"worker": worker, "i": i},
        mode=Mode.APPROVE,
    )


def _worker(store: Store, worker: int, barrier: Barrier) -> list[IngestResult]:
    barrier.wait()
    return [_ingest(store, worker, i) for i in range(INGESTS)]


def _check(store: Store, results: list[IngestResult], workers: int) -> None:
    incidents = store.list_incidents()
    assert len(incidents) == 1, incidents
    incident = incidents[0]
    assert sum(r.created for r in results) == 1
    assert {r.incident_id for r in results} == {incident.id}
    assert incident.alert_count == workers * INGESTS
    rows = store.incident_alerts(incident.id)
    assert {r.fingerprint for r in rows} == {f"w{w}-{i}" for w in range(workers) for i in range(INGESTS)}
    assert len(rows) == workers * INGESTS


def test_threads_sharing_a_store_open_one_incident(store: Store) -> None:
    barrier = Barrier(THREADS)
    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(_worker, store, w, barrier) for w in range(THREADS)]
        results = [r for f in futures for r in f.result()]
    _check(store, results, THREADS)


def test_separate_store_instances_open_one_incident(store: Store, make_store: Callable[[], Store]) -> None:
    stores = [make_store() for _ in range(THREADS)]
    barrier = Barrier(THREADS)
    with ThreadPoolExecutor(THREADS) as pool:
        futures = [pool.submit(_worker, s, w, barrier) for w, s in enumerate(stores)]
        results = [r for f in futures for r in f.result()]
    _check(store, results, THREADS)


def test_losing_the_race_to_another_writer_attaches(
    store: Store, db_url: str, backend: str, integrity_errors: list[IntegrityError]
) -> None:
    """Another transaction inserts the open incident while our ingest runs: ours attaches to it.

    On PostgreSQL our INSERT waits on the partial unique index, fails with IntegrityError when the other
    transaction commits, and the retry attaches. On SQLite our BEGIN IMMEDIATE waits for the other writer.
    """

    engine = make_engine(db_url)
    try:
        with Session(writer(engine)) as other, ThreadPoolExecutor(1) as pool:
            other.add(
                IncidentORM(
                    id="inc-othersession", runbook="elevated-error-rate", service="kamkmserve", severity="sev2",
                    mode="approve", status="open", incident_key=KEY, alert={"name": "x", "service": "kamkmserve"},
                    opened_at=T0, alert_count=0,
                )
            )  # fmt: skip
            other.flush()  # row inserted and index entry taken, not committed
            future = pool.submit(_ingest, store, 0, 0)
            time.sleep(0.5)
            assert not future.done()  # blocked behind the other writer
            other.commit()
            result = future.result(timeout=30)
    finally:
        engine.dispose()
    assert result.incident_id == "inc-othersession" and not result.created and result.alert_count == 1
    if backend == "postgresql":
        assert len(integrity_errors) == 1


_CHILD = """
import json, sys, time
from datetime import timedelta
from remediation.models import Alert, Mode, Severity
from remediation.store import Store
from tests.store.store_factories import T0

url, worker, start_at, count, key = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
store = Store(url)
store.ping()
time.sleep(max(0.0, start_at - time.time()))
out = []
for i in range(count):
    r = store.ingest_alert(
        incident_key=key, runbook="elevated-error-rate", service="kamkmserve", severity=Severity.SEV2,
        alert=Alert(name="HighErrorRate", service="kamkmserve"), source="alertmanager",
        fingerprint=f"w{worker}-{i}", status="firing", received_at=T0 + timedelta(milliseconds=i),
        payload={}, mode=Mode.APPROVE,
    )
    out.append(r.model_dump(mode="json"))
store.dispose()
print(json.dumps(out))
"""


def test_separate_processes_open_one_incident(store: Store, db_url: str) -> None:
    processes = 4
    start_at = time.time() + 3.0  # every child has imported and connected by then; they start together
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _CHILD, db_url, str(w), str(start_at), str(INGESTS), KEY],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(processes)
    ]
    results: list[IngestResult] = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        results += [IngestResult.model_validate(r) for r in json.loads(out)]
    _check(store, results, processes)
