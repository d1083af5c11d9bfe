"""Shared pieces of the intake tests: a recording RunStarter, signing, the real Alertmanager fixtures."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn

from remediation.orchestration.stack import free_port
from remediation.orchestration.starter import StartFailed
from remediation.settings import Settings

with warnings.catch_warnings():
    # Starlette 1.x would like httpx2 for its TestClient; httpx 0.28 is what the project pins and it works.
    warnings.filterwarnings("ignore", message=".*httpx2.*")
    from starlette.testclient import TestClient

__all__ = ["TestClient"]

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "alertmanager"
TOKEN = "example-intake-token"  # what the fixtures' alertmanager.yml sends
SENTRY_SECRET = "sentry-client-secret-for-tests"
T0 = datetime(2026, 11, 26, 16, 3, 10, tzinfo=UTC)  # just after the fixtures' startsAt
DEPLOYMENT = "elevated-error-rate/elevated-error-rate"


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "intake_token": TOKEN,
        "sentry_client_secret": SENTRY_SECRET,
        "intake_max_body_bytes": 64 * 1024,
        **overrides,
    }
    return Settings(**values)


def fixture_bytes(name: str) -> bytes:
    """A real Alertmanager 0.25 delivery, byte for byte."""
    return (FIXTURES / name).read_bytes().strip()


def fixture_json(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(fixture_bytes(name))
    return data


FIXTURE_NAMES = ("01-firing-two-alerts.json", "02-one-resolved-one-firing.json", "03-group-resolved.json")


def am_headers() -> dict[str, str]:
    """The request headers real Alertmanager sent (request-headers.txt)."""
    headers: dict[str, str] = {}
    for line in (FIXTURES / "request-headers.txt").read_text().splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            headers[key.strip()] = value.strip()
    return headers


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


def sentry_headers(
    raw: bytes,
    resource: str,
    *,
    now: datetime = T0,
    secret: str = SENTRY_SECRET,
    request_id: str | None = None,
    age_s: float = 0,
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Request-ID": request_id or uuid.uuid4().hex,
        "Sentry-Hook-Resource": resource,
        "Sentry-Hook-Timestamp": str(int(now.timestamp() - age_s)),
        "Sentry-Hook-Signature": hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest(),
    }


def sentry_time(at: datetime) -> str:
    """A time as Sentry writes it in webhook bodies: ``2026-11-26T16:03:10.000000Z``."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def metric_alert(
    action: str = "critical", *, rule_id: str = "7", query: str = "level:error", at: datetime = T0
) -> dict[str, Any]:
    """The fixture shape of docs/reference/integrations.md §2.1; the Sentry incident was detected ``at``."""
    title = {"critical": "Critical", "warning": "Warning", "resolved": "Resolved"}[action]
    return {
        "action": action,
        "actor": {"type": "application", "id": "sentry", "name": "Sentry"},
        "installation": {"uuid": "a8e5d37a-696c-4c54-adb5-b3f28d64c7de"},
        "data": {
            "description_title": f"{title}: Too many errors",
            "web_url": "https://sentry.io/organizations/kamkm/alerts/rules/details/7/",
            "metric_alert": {
                "id": "4",
                "title": "Too many errors",
                "status": 20 if action == "critical" else (10 if action == "warning" else 2),
                "projects": ["kamkmserve"],
                "date_started": sentry_time(at), "date_detected": sentry_time(at), "date_created": sentry_time(at),
                "date_closed": sentry_time(at) if action == "resolved" else None,
                "alert_rule": {"id": rule_id, "name": "Too many errors", "aggregate": "count()",
                               "query": query, "time_window": 10},
            },
        },
    }  # fmt: skip


def issue(action: str = "created", issue_id: str = "1170820", *, at: datetime = T0) -> dict[str, Any]:
    """An ``issue`` webhook whose issue was first and last seen ``at``."""
    return {
        "action": action,
        "actor": {"type": "application", "id": "sentry", "name": "Sentry"},
        "installation": {"uuid": "a8e5d37a-696c-4c54-adb5-b3f28d64c7de"},
        "data": {
            "issue": {
                "id": issue_id, "shortId": "KAMKMSERVE-1", "title": "TypeError: cannot read 'id' of undefined",
                "culprit": "app/api/orders/route.ts", "level": "error", "status": "unresolved",
                "substatus": "new", "count": "1", "userCount": 1, "project": {"id": "2", "slug": "kamkmserve"},
                "firstSeen": sentry_time(at), "lastSeen": sentry_time(at),
            }
        },
    }  # fmt: skip


class FakeStarter:
    """Records every ``start``; idempotent on the key like the real starters; can fail or be slow."""

    def __init__(self, *, fail: bool = False, delay_s: float = 0.0) -> None:
        self.fail = fail
        self.delay_s = delay_s
        self.calls: list[tuple[str, dict[str, Any], str]] = []
        self.runs: dict[str, str] = {}
        self._lock = threading.Lock()

    async def start(self, deployment: str, parameters: dict[str, Any], idempotency_key: str) -> str:
        with self._lock:
            self.calls.append((deployment, dict(parameters), idempotency_key))
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail:
            raise StartFailed("Prefect API unreachable (test)")
        with self._lock:
            return self.runs.setdefault(idempotency_key, str(uuid.uuid4()))


def wait_until(condition: Callable[[], object], timeout_s: float, what: str, *, every_s: float = 0.02) -> float:
    """Poll ``condition`` until it is truthy; the seconds that took. Fails naming ``what`` after ``timeout_s``."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout_s, f"{what}: not within {timeout_s:g} s"
        time.sleep(every_s)
    return time.monotonic() - started


@contextmanager
def serve_app(app: Any, port: int | None = None) -> Iterator[str]:
    """The receiver on a real uvicorn server on 127.0.0.1 (on ``port``, else a free one) for the block; yields its
    base URL."""
    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
