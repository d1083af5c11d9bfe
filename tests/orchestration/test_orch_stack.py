"""``run_stack`` end to end in a subprocess: its own Prefect server, a warm run, SIGTERM -> drain (503), sentry-sdk
flushed, database pools closed, clean exit 0."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from remediation import catalog
from remediation.orchestration.stack import free_port, prefect_database_url
from remediation.settings import Settings
from tests.helpers import local_http
from tests.helpers.sentry_ingest import fake_sentry_ingest
from tests.orchestration.orchkit import key

REPO = Path(__file__).resolve().parents[2]
RUNBOOK = "elevated-error-rate/elevated-error-rate"


def test_prefect_database_url_prefers_postgres_with_asyncpg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REMEDIATE_PREFECT_DATABASE_URL", raising=False)
    assert prefect_database_url(Settings(), tmp_path) == f"sqlite+aiosqlite:///{tmp_path.resolve()}/prefect.db"
    monkeypatch.setenv("REMEDIATE_PREFECT_DATABASE_URL", "postgresql+psycopg://u:p@db:5432/prefect")
    assert prefect_database_url(Settings(), tmp_path) == "postgresql+asyncpg://u:p@db:5432/prefect"


def _wait_http(url: str, process: subprocess.Popen[str], timeout_s: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the stack exited early:\n{process.stdout.read() if process.stdout else ''}"
        try:
            response = local_http.get(url, timeout=2)
            if response.status_code == 200:
                body: dict[str, object] = response.json()
                return body
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"{url} never answered")


@pytest.mark.prefect_server
def test_run_stack_serves_runs_and_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "REMEDIATE_", "SENTRY_"))}
    with fake_sentry_ingest() as ingest:
        env.update({"REMEDIATE_HOME": str(tmp_path), "REMEDIATE_APP_URL": "http://127.0.0.1:9",
                    "REMEDIATE_HTTP_TIMEOUT_S": "0.5", "SENTRY_DSN": ingest.dsn})
        process = subprocess.Popen([sys.executable, "-m", "tests.orchestration.orch_stack_main", "127.0.0.1",
                                    str(port)], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True)
        draining: list[httpx.Response] = []
        try:
            health = _wait_http(f"http://127.0.0.1:{port}/healthz", process, timeout_s=120)
            # Every runbook in the catalog is imported and its deployment found by the warm executor.
            assert health == {"healthy": True, "loaded": sorted(f"{name}/{name}" for name in catalog.RUNBOOKS)}
            started = local_http.post(f"http://127.0.0.1:{port}/start", timeout=30, json={
                "deployment": RUNBOOK, "key": key("stack"),
                "parameters": {"service": "kamkmserve", "mode": "dry_run", "sample_interval_s": 0.1,
                               "confirm_samples": 1, "alert_name": "HighErrorRate", "incident_id": "inc-stack"}})
            assert started.status_code == 200, started.text
            time.sleep(3)  # the app is unreachable: the run escalates within ~1 s
            queued = local_http.post(f"http://127.0.0.1:{port}/capture", json={"n": 20}, timeout=10).json()
            assert queued == {"queued": 20, "sentry": True}
            process.send_signal(signal.SIGTERM)  # right behind the events: they are still in the SDK's queue
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline and not draining:
                try:
                    answer = local_http.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                    if answer.status_code == 503:
                        draining.append(answer)
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
            output, _ = process.communicate(timeout=60)
        finally:
            if process.poll() is None:  # a failed assertion: stop it the polite way so it stops its Prefect server
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        events = [e for e in ingest.events() if str(e.get("message", "")).startswith("queued before shutdown")]
    assert len(events) == 20, f"{len(events)} of 20 queued events reached the ingest server"
    assert draining and draining[0].json()["draining"] is True and draining[0].headers["Retry-After"] == "5"
    assert "closed the store's database connections" in output
    assert "sentry-sdk flushed" in output
    print(output)
    assert process.returncode == 0, output
    assert "Prefect API (local server)" in output
    assert "[identify] escalated" in output or "outcome escalated" in output, output
    assert "stopped serving runbooks" in output
    assert (tmp_path / "prefect" / "prefect.db").exists()  # SQLite under REMEDIATE_HOME/prefect
    api_url = re.search(r"Prefect API \(local server\) at (\S+)", output)
    assert api_url is not None
    with pytest.raises(httpx.ConnectError):  # the server subprocess was stopped with the stack
        local_http.get(f"{api_url.group(1)}/health", timeout=2)
