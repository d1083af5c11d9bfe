"""``POST /logs/vercel`` over real HTTP (uvicorn): signed Vercel Log Drain deliveries are stored and read back as
the app's lines; unsigned, missing-secret and malformed deliveries are refused with JSON and store nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest

from remediation.intake import create_app
from remediation.providers.clock import VirtualClock
from remediation.providers.drain_logs import VERCEL_DRAIN, DrainLogs
from remediation.runbooks.suspicious_upload import parse_upload_logs
from remediation.store import Store
from remediation.store.logs import LogEntryIn
from tasks.database_errors.identify import parse_db_logs
from tests.helpers import local_http
from tests.helpers.applog import CAPTURED, app_line, burst, captured
from tests.intake.intakekit import T0, FakeStarter, serve_app, settings

SECRET = "drain-signature-secret-for-tests"
URL = "/logs/vercel"
LIMIT = 64 * 1024  # intakekit.settings()

Serve = Callable[..., AbstractContextManager[str]]


@pytest.fixture
def serve(store: Store, clock: VirtualClock) -> Serve:
    """``with serve(**settings_overrides) as base_url``: the receiver on a real port, drain secret set by default."""

    @contextmanager
    def run(**overrides: Any) -> Iterator[str]:
        app = create_app(settings(**{"vercel_drain_secret": SECRET, **overrides}), store, FakeStarter(), clock=clock)
        with serve_app(app) as url:
            yield url

    return run


def signed(raw: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"x-vercel-signature": hmac.new(secret.encode(), raw, hashlib.sha1).hexdigest(),
            "content-type": "application/json"}


def post(base: str, raw: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return local_http.post(base + URL, content=raw, headers=signed(raw) if headers is None else headers, timeout=10)


def vercel_entry(number: int, message: str | None, at: datetime, stream: str = "stdout") -> dict[str, Any]:
    """A runtime log entry in Vercel's drain schema; ``message`` is what the function printed."""
    item: dict[str, Any] = {"id": f"1573817187330377061717{number:06d}", "timestamp": int(at.timestamp() * 1000),
                            "type": stream, "source": "lambda", "level": "error" if stream == "stderr" else "info",
                            "projectId": "prj_kamkmserve", "deploymentId": "dpl_233NRGRjVZX1caZrXWtz5g1TAksD",
                            "host": "kamkmserve.vercel.app", "entrypoint": "api/uploads"}
    if message is not None:
        item["message"] = message
    return item


def captured_entries() -> list[dict[str, Any]]:
    """Every non-blank captured line, banner included, stamped with its own time (the banner: the run's start)."""
    out = []
    for name in CAPTURED:
        for text in captured(name).decode().splitlines():
            if not text.strip():
                continue
            at = T0 - timedelta(minutes=40)
            if text.startswith("{"):
                at = datetime.fromisoformat(json.loads(text)["timestamp"].replace("Z", "+00:00"))
            out.append(vercel_entry(len(out), text, at, name.rsplit(".", 1)[1]))
    return out


def stored(store: Store) -> list[str]:
    return [row.message for row in store.log_lines(VERCEL_DRAIN, None, 100_000)]


async def test_captured_and_generated_output_posted_as_ndjson_and_as_an_array_reaches_the_parsers(
        serve: Serve, store: Store, clock: VirtualClock) -> None:
    captured_batch = [*captured_entries(), vercel_entry(900, None, T0 - timedelta(minutes=20))]  # + a request record
    start = T0 - timedelta(minutes=10)
    generated_batch = [vercel_entry(1000 + i, line, start + timedelta(milliseconds=i), stream)
                       for i, (stream, line) in enumerate(burst(start, malware=10, exe=10))]
    with serve() as base:
        ndjson = post(base, "\n".join(json.dumps(e) for e in captured_batch).encode() + b"\n")
        array = post(base, json.dumps(generated_batch).encode())
    assert ndjson.status_code == 200, ndjson.text
    assert ndjson.json()["stored"] == len(captured_batch) - 1 and ndjson.json()["skipped"]["no_message"] == 1
    assert array.status_code == 200 and array.json()["stored"] == 40

    lines = await DrainLogs(store, clock=clock).lines(since=T0 - timedelta(hours=1), limit=5000)
    assert all(line.raw.startswith("{") for line in lines) and len(lines) == 22 + 40
    uploads = parse_upload_logs(lines)
    assert (uploads.malware, uploads.reasons) == (11, {"simulated-detection": 11})
    assert uploads.policy == 14 and uploads.refused_extensions == {".exe": 12, ".txt": 1}
    assert parse_db_logs(lines).failures == 9 + 20


@pytest.mark.parametrize("headers", [
    {},
    signed(b"[]", secret="not-the-secret"),
    {"x-vercel-signature": "zz-not-hex"},
    {"x-vercel-signature": ""},
], ids=["missing", "wrong-secret", "garbage", "empty"])
def test_a_missing_or_bad_signature_is_401_json_and_stores_nothing(
        serve: Serve, store: Store, headers: dict[str, str]) -> None:
    raw = json.dumps([vercel_entry(1, app_line(T0, "info", "Upload: validated"), T0)]).encode()
    with serve() as base:
        reply = post(base, raw, headers)
    assert reply.status_code == 401 and reply.json()["error"] == "unauthorized", reply.text
    assert "x-vercel-signature" in reply.json()["detail"]
    assert stored(store) == []


def test_a_signature_of_another_body_is_401(serve: Serve, store: Store) -> None:
    raw = json.dumps([vercel_entry(1, app_line(T0, "info", "Upload: validated"), T0)]).encode()
    with serve() as base:
        reply = post(base, raw, signed(raw.replace(b"validated", b"validatex")))
    assert reply.status_code == 401 and stored(store) == []


def test_without_a_drain_secret_every_delivery_is_refused_with_a_reason(serve: Serve, store: Store) -> None:
    raw = json.dumps([vercel_entry(1, app_line(T0, "info", "Upload: validated"), T0)]).encode()
    with serve(vercel_drain_secret=None) as base:
        reply = post(base, raw)
    assert reply.status_code == 503 and "REMEDIATE_VERCEL_DRAIN_SECRET" in reply.json()["detail"]
    assert stored(store) == []


MALFORMED = {
    "truncated-array": b'[{"message": "x", "timestamp": 1',
    "ndjson-bad-second-line": b'{"message": "x", "timestamp": 1764172056613}\n{"message": ',
    "not-utf8": b'[{"message": "\xff\xfe", "timestamp": 1}]',
    "empty": b"",
    "blank-lines": b"\n \n",
    "nan": b'[{"message": "x", "timestamp": NaN}]',
    "nul": b'[{"message": "a\\u0000b", "timestamp": 1764172056613}]',
}


@pytest.mark.parametrize("raw", list(MALFORMED.values()), ids=list(MALFORMED))
def test_a_malformed_body_is_400_json_never_500_and_stores_nothing(serve: Serve, store: Store, raw: bytes) -> None:
    with serve() as base:
        reply = post(base, raw)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"] == "malformed JSON" and reply.json()["detail"]
    assert stored(store) == []


NOT_ENTRIES = {
    "array-of-numbers": b"[1, 2]",
    "ndjson-string": b'"hello"\n',
    "no-timestamps": b'[{"message": "x"}, {"message": "y", "timestamp": "yesterday"}]',
    "message-not-text": b'[{"message": {"a": 1}, "timestamp": 1764172056613}]',
}


@pytest.mark.parametrize("raw", list(NOT_ENTRIES.values()), ids=list(NOT_ENTRIES))
def test_a_body_that_is_no_batch_of_log_entries_is_422_json(serve: Serve, store: Store, raw: bytes) -> None:
    with serve() as base:
        reply = post(base, raw)
    assert reply.status_code == 422 and reply.json()["error"] == "invalid payload", reply.text
    assert stored(store) == []


def test_a_body_over_the_limit_is_413(serve: Serve, store: Store) -> None:
    raw = json.dumps([vercel_entry(i, "x" * 1000, T0) for i in range(LIMIT // 1000 + 1)]).encode()
    with serve() as base:
        reply = post(base, raw)
    assert reply.status_code == 413 and stored(store) == []


def test_lines_past_the_retention_are_not_stored_and_old_rows_are_pruned_on_insert(
        serve: Serve, store: Store) -> None:
    kept_hours = 2
    store.add_log_lines(VERCEL_DRAIN, [LogEntryIn(T0 - timedelta(hours=3), "stale", None, {})], T0)
    raw = json.dumps([vercel_entry(1, "fresh", T0), vercel_entry(2, "late", T0 - timedelta(hours=5))]).encode()
    with serve(log_drain_retention_s=kept_hours * 3600) as base:
        reply = post(base, raw)
    assert reply.status_code == 200 and reply.json()["skipped"]["expired"] == 1 and reply.json()["pruned"] == 1
    assert stored(store) == ["fresh"]
