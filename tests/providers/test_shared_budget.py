"""One request budget per app across processes (``SharedRequestBudget`` over the store), on SQLite and PostgreSQL.

The readers are real processes (``budget_reader.py``) against a real local HTTP server that counts what
reaches it. Their wall clock is injected, so "within one minute" and "until Retry-After" need no waiting:
the budget refuses instead of waiting.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from remediation.providers.budget import SharedRequestBudget, app_budget, budget_key
from remediation.providers.http import AppHttp
from remediation.settings import Settings
from remediation.store import Store
from tests.helpers.local_server import LocalHttpServer
from tests.helpers.services import postgres_url_fixture

REPO = Path(__file__).resolve().parents[2]
READER = Path(__file__).with_name("budget_reader.py")
T0 = 1_800_000_000.0
METRICS = "/api/monitoring/metrics"

pg_database_url = postgres_url_fixture(name="pg_database_url", prefix="remediate_budget", scope="function")


class CountingApp(LocalHttpServer):
    """The app's metrics endpoint: counts every request that reaches it; answers 200, or 429 when told to."""

    def __init__(self) -> None:
        super().__init__()
        self.hits = 0
        self.retry_after: str | None = None  # set: answer 429 with this Retry-After

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        with self.lock:
            self.hits += 1
            retry_after = self.retry_after
        body = b"Too Many Requests" if retry_after else b"process_uptime_seconds 1\n"
        handler.send_response(429 if retry_after else 200)
        handler.send_header("content-type", "text/plain")
        handler.send_header("content-length", str(len(body)))
        if retry_after:
            handler.send_header("retry-after", retry_after)
        handler.end_headers()
        handler.wfile.write(body)


@pytest.fixture
def app() -> Iterator[CountingApp]:
    with CountingApp() as server:
        yield server


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty store: a SQLite file, or a throwaway PostgreSQL database of this test's own."""
    url: str = (f"sqlite:///{tmp_path / 'remediate.db'}" if request.param == "sqlite"
                else request.getfixturevalue("pg_database_url"))
    store = Store(url)
    store.migrate()
    store.dispose()
    return url


def run_readers(count: int, *, store_url: str, app_url: str, per_minute: int, reads: int,
                wall: float | None) -> list[dict[str, Any]]:
    """Start ``count`` reader processes, release them together once all are ready, return their reports."""
    args = json.dumps({"store_url": store_url, "app_url": app_url, "per_minute": per_minute, "reads": reads,
                       "wall": wall})
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, str(READER), args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env, cwd=REPO) for _ in range(count)]
    try:
        for proc in procs:
            assert proc.stdout is not None
            line = proc.stdout.readline()  # blocks until this reader has imported everything and built its budget
            assert line.strip() == "ready", proc.stderr.read() if proc.stderr else line
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        reports = []
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            reports.append(json.loads(out.strip().splitlines()[-1]))
        return reports
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_three_processes_reading_one_app_at_once_spend_one_budget_between_them(
        app: CountingApp, store_url: str) -> None:
    """12/min shared by three processes trying 30 reads each within one (frozen) minute: the app sees exactly 12,
    and every other read is refused by the shared budget, not sent and not waited for."""
    reports = run_readers(3, store_url=store_url, app_url=app.url, per_minute=12, reads=30, wall=T0)
    assert app.hits == 12
    assert sum(r["sent"] for r in reports) == 12
    refusals = [reason for r in reports for reason in r["refusals"]]
    assert len(refusals) == 3 * 30 - 12
    assert all("shared budget of 12 requests/min" in reason for reason in refusals), refusals[:3]
    assert all(r["held_by_app"] == 0 for r in reports)


def test_with_the_real_clock_three_processes_get_no_more_than_the_budget_and_its_refill(
        app: CountingApp, tmp_path: Path) -> None:
    """Same race on the wall clock: the app sees at most 12 plus the 12/60 tokens per second that elapsed."""
    store_url = f"sqlite:///{tmp_path / 'remediate.db'}"
    Store(store_url).migrate()
    started = time.time()
    reports = run_readers(3, store_url=store_url, app_url=app.url, per_minute=12, reads=30, wall=None)
    elapsed = time.time() - started
    assert app.hits == sum(r["sent"] for r in reports)
    assert 12 <= app.hits <= 12 + math.floor(elapsed * 12 / 60)


async def test_a_429_seen_by_one_process_blocks_the_others_until_retry_after(app: CountingApp, store_url: str) -> None:
    """This process meets a 429 (Retry-After 30); other processes then send nothing until it ends, and report
    their refusals as the app's rate limit (``rate_limited``), not as a spent budget of ours."""
    store = Store(store_url)
    budget = SharedRequestBudget(store, budget_key(app.url), 12, wall=lambda: T0)
    app.retry_after = "30"
    first = await AppHttp(app.url, budget).get(METRICS)
    assert first.status == 429 and app.hits == 1
    app.retry_after = None

    during = run_readers(2, store_url=store_url, app_url=app.url, per_minute=12, reads=5, wall=T0 + 10)
    assert app.hits == 1
    for report in during:
        assert report["sent"] == 0 and report["held_by_app"] == 5
        assert all("429" in reason and "20s left" in reason for reason in report["refusals"])
        assert report["tally"]["held_back"] == 5

    # Ten seconds after the block the bucket holds two tokens: it refilled from the block's end, not from full.
    later = Store(store_url)
    http = AppHttp(app.url, SharedRequestBudget(later, budget_key(app.url), 12, wall=lambda: T0 + 40))
    after = [await http.get(METRICS) for _ in range(5)]
    assert [f.ok for f in after] == [True, True, False, False, False]
    assert not any(f.rate_limited for f in after) and app.hits == 3
    later.dispose()
    store.dispose()


class CountingStore:
    """A real store that counts how often the budget asks it (to see the local fast path at work)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.takes = 0

    def take_request(self, key: str, *, per_minute: int, now: float) -> Any:
        self.takes += 1
        return self.store.take_request(key, per_minute=per_minute, now=now)

    def block_requests(self, key: str, *, until: float, reason: str, per_minute: int, now: float) -> Any:
        return self.store.block_requests(key, until=until, reason=reason, per_minute=per_minute, now=now)


def test_the_local_fast_path_only_refuses_and_asks_the_store_again_once_a_token_can_exist(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'remediate.db'}")
    store.migrate()
    now = [T0]
    counting = CountingStore(store)
    budget = SharedRequestBudget(counting, "app:http://a", 6, wall=lambda: now[0])
    assert [budget.try_acquire() for _ in range(6)] == [None] * 6
    assert budget.try_acquire() is not None and counting.takes == 7
    now[0] = T0 + 9.0
    assert budget.try_acquire() is not None and counting.takes == 7  # no token can exist before T0 + 10
    now[0] = T0 + 10.0
    assert budget.try_acquire() is None and counting.takes == 8

    budget.observe(429, {"retry-after": "30"})
    now[0] = T0 + 39.0
    refused = budget.try_acquire()
    assert refused is not None and "429" in refused and budget.blocked_by_app()
    assert counting.takes == 8
    # Another process on the same store learns the block from the store, not from a 429 of its own.
    other = SharedRequestBudget(store, "app:http://a", 6, wall=lambda: now[0])
    assert other.try_acquire() is not None and other.blocked_by_app()
    store.dispose()


async def test_an_unreadable_budget_store_sends_nothing(app: CountingApp) -> None:
    """Without the shared budget a process cannot know what the others spent: it refuses instead of guessing."""
    store = Store("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    http = AppHttp(app.url, SharedRequestBudget(store, budget_key(app.url), 30))
    fetched = await http.get(METRICS)
    assert not fetched.ok and "unreadable" in (fetched.error or "") and not fetched.rate_limited
    assert app.hits == 0
    store.dispose()


def test_one_app_gets_one_key_however_its_url_is_spelled() -> None:
    assert budget_key("HTTP://App.Example.com:80/some/path/") == budget_key("http://app.example.com") \
        == "app:http://app.example.com"
    assert budget_key("https://app.example.com:443") == "app:https://app.example.com"
    assert budget_key("http://127.0.0.1:3000") != budget_key("http://127.0.0.1:3001")
    assert budget_key("http://[::1]:3000/") == "app:http://[::1]:3000"
    assert len(budget_key("http://" + "a" * 300 + ".example")) <= 255


def test_app_budget_gives_every_reader_of_one_app_the_same_store_bucket(tmp_path: Path) -> None:
    """What the composition root calls: two bundles (two Store instances, as two processes have) share 2/min."""
    url = f"sqlite:///{tmp_path / 'remediate.db'}"
    first, second = Store(url), Store(url)
    first.migrate()
    settings = Settings.model_construct(app_url="http://127.0.0.1:3000/", metrics_budget_per_min=2)
    a = app_budget(settings, first, wall=lambda: T0)
    b = app_budget(settings.model_copy(update={"app_url": "http://127.0.0.1:3000"}), second, wall=lambda: T0)
    assert isinstance(a, SharedRequestBudget) and a.per_minute == 2
    assert a.try_acquire() is None and b.try_acquire() is None
    assert a.try_acquire() is not None and b.try_acquire() is not None
    first.dispose()
    second.dispose()


async def test_concurrent_reads_in_one_process_share_the_budget_across_threads(
        app: CountingApp, tmp_path: Path) -> None:
    """One budget object used from several threads (flows run on several event loops) still spends it once."""
    store = Store(f"sqlite:///{tmp_path / 'remediate.db'}")
    store.migrate()
    budget = SharedRequestBudget(store, budget_key(app.url), 10, wall=lambda: T0)
    results: list[str | None] = []
    lock = threading.Lock()

    def take(_: int) -> None:
        for _ in range(5):
            outcome = budget.try_acquire()
            with lock:
                results.append(outcome)

    threads = [threading.Thread(target=take, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(None) == 10 and len(results) == 20
    # The bucket is empty: a real read is refused and nothing reaches the app.
    fetched = await AppHttp(app.url, budget).get(METRICS)
    assert not fetched.ok and app.hits == 0
    store.dispose()
