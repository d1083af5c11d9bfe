"""Bad input on every endpoint gets a deliberate 4xx; our own trouble gets 503; nothing is ever a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest

from remediation.store import Store
from tests.intake.conftest import AppFactory
from tests.intake.intakekit import (
    FIXTURE_NAMES,
    FakeStarter,
    TestClient,
    am_headers,
    bearer,
    fixture_bytes,
    metric_alert,
    sentry_headers,
    settings,
)

LIMIT = 64 * 1024  # intakekit.settings()


class Sender(Protocol):
    def __call__(self, client: TestClient, raw: bytes, **kw: Any) -> httpx.Response: ...


def _am(client: TestClient, raw: bytes, **kw: Any) -> httpx.Response:
    return client.post("/alerts/alertmanager", content=raw, headers=am_headers() | kw.pop("headers", {}), **kw)


def _generic(client: TestClient, raw: bytes, **kw: Any) -> httpx.Response:
    return client.post("/alerts/generic", content=raw, headers=bearer() | kw.pop("headers", {}), **kw)


def _sentry(client: TestClient, raw: bytes, **kw: Any) -> httpx.Response:
    headers = sentry_headers(raw, "metric_alert") | kw.pop("headers", {})
    return client.post("/alerts/sentry", content=raw, headers=headers, **kw)


ENDPOINTS: dict[str, Sender] = {"alertmanager": _am, "generic": _generic, "sentry": _sentry}
endpoints = pytest.mark.parametrize("send", list(ENDPOINTS.values()), ids=list(ENDPOINTS))


BAD_JSON = {
    "syntax": (b'{"version": "4",', "Expecting"),
    "trailing-garbage": (b"{} {}", "Extra data"),
    "empty": (b"", "empty"),
    "whitespace": (b"  \n", "empty"),
    "not-utf8": (b'{"name": "\xff\xfe"}', "not UTF-8"),
    "nan": (b'{"x": NaN}', "NaN"),
    "infinity": (b'{"x": -Infinity}', "Infinity"),
    "overflow-float": (b'{"x": 1e400}', "out of range"),
    "huge-int": (b'{"x": ' + b"9" * 5000 + b"}", "digits"),
    "nul-in-value": (b'{"name": "a\\u0000b"}', "NUL"),
    "nul-in-key": (b'{"a\\u0000": 1}', "NUL"),
    "lone-surrogate": (b'{"name": "\\ud800"}', "surrogate"),
    "deep": (b'{"a":' * 100 + b"1" + b"}" * 100, "nested"),
    "very-deep": (b"[" * 20_000 + b"]" * 20_000, "nested"),
}


@endpoints
@pytest.mark.parametrize("case", list(BAD_JSON), ids=list(BAD_JSON))
def test_malformed_json_is_400_with_a_clear_message(client: TestClient, store: Store, send: Sender, case: str) -> None:
    raw, expected = BAD_JSON[case]
    reply = send(client, raw)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"] == "malformed JSON" and expected in reply.json()["detail"]
    assert store.list_incidents() == [] and store.unrouted_alerts() == []


@endpoints
@pytest.mark.parametrize("raw", [b"[]", b'"alert"', b"42", b"null", b"true"])
def test_json_that_is_not_an_object_is_422(client: TestClient, send: Sender, raw: bytes) -> None:
    reply = send(client, raw)
    assert reply.status_code == 422 and "expected a JSON object" in reply.json()["detail"]


@endpoints
def test_oversized_body_is_413_by_content_length(client: TestClient, store: Store, send: Sender) -> None:
    raw = b'{"pad": "' + b"x" * LIMIT + b'"}'
    reply = send(client, raw)
    assert reply.status_code == 413 and str(LIMIT) in reply.json()["detail"]


@endpoints
def test_a_lying_content_length_is_413_before_reading(client: TestClient, send: Sender) -> None:
    reply = send(client, b"{}", headers={"Content-Length": str(LIMIT + 1)})
    assert reply.status_code == 413


@endpoints
def test_oversized_streamed_body_is_413_while_reading(client: TestClient, store: Store, send: Sender) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"pad": "'
        for _ in range(LIMIT // 1024 + 2):
            yield b"x" * 1024
        yield b'"}'

    if send is _sentry:  # the signature is over the whole body; the limit must trip before it is checked
        raw = b"".join(chunks())
        reply = _sentry_streamed(client, raw, chunks())
    else:
        reply = _stream(client, send, chunks())
    assert reply.status_code == 413
    assert store.list_incidents() == []


def _stream(client: TestClient, send: Sender, body: Iterator[bytes]) -> httpx.Response:
    path = "/alerts/alertmanager" if send is _am else "/alerts/generic"
    request = client.build_request("POST", path, content=body, headers=bearer())
    assert "content-length" not in request.headers  # really chunked
    return client.send(request)


def _sentry_streamed(client: TestClient, raw: bytes, body: Iterator[bytes]) -> httpx.Response:
    request = client.build_request("POST", "/alerts/sentry", content=body, headers=sentry_headers(raw, "metric_alert"))
    assert "content-length" not in request.headers
    return client.send(request)


@pytest.mark.parametrize("path", ["/alerts/alertmanager", "/alerts/generic"])
def test_bad_content_length_header_is_400(store: Store, path: str) -> None:
    from remediation.intake import create_app

    app = create_app(settings(), store, FakeStarter())
    headers = [(b"authorization", b"Bearer example-intake-token"), (b"content-length", b"lots")]
    status = _raw_asgi_status(app, path, headers, b"{}")
    assert status == 400


def _raw_asgi_status(app: Any, path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> int:
    import asyncio

    sent: list[dict[str, Any]] = []
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}  # fmt: skip

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return int(next(m for m in sent if m["type"] == "http.response.start")["status"])


def test_methods_and_paths_are_plain_4xx(client: TestClient) -> None:
    assert client.get("/alerts/alertmanager").status_code == 405
    assert client.post("/alerts/nagios", content=b"{}").status_code == 404
    assert client.post("/healthz").status_code == 405


@pytest.mark.parametrize("send", [_am, _generic], ids=["alertmanager", "generic"])
def test_without_configured_credentials_everything_is_refused_503(make_client: AppFactory, send: Sender) -> None:
    client = make_client(settings=settings(intake_token=None))
    reply = send(client, fixture_bytes(FIXTURE_NAMES[0]))
    assert reply.status_code == 503 and "REMEDIATE_INTAKE_TOKEN" in reply.json()["detail"]


@pytest.fixture
def broken_store(tmp_path: Path) -> Store:
    """A store whose database cannot be opened (its directory is a file): every call raises."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    return Store(f"sqlite:///{blocker / 'x.db'}")


def test_store_outage_is_503_so_alertmanager_retries(make_client: AppFactory, broken_store: Store) -> None:
    client = make_client(store=broken_store)
    reply = _am(client, fixture_bytes(FIXTURE_NAMES[0]))
    assert reply.status_code == 503 and reply.json()["error"] == "store unavailable"
    generic = _generic(client, json.dumps({"name": "HighErrorRate", "service": "kamkmserve"}).encode())
    assert generic.status_code == 503
    sentry = _sentry(client, json.dumps(metric_alert()).encode())
    assert sentry.status_code == 503
    # The Request-ID of the failed delivery is not remembered: Sentry (or an operator) may resend it.


def test_healthz(make_client: AppFactory, broken_store: Store) -> None:
    assert make_client().get("/healthz").json() == {"status": "ok"}
    down = make_client(store=broken_store).get("/healthz")
    assert down.status_code == 503 and down.json()["status"] == "unavailable"


def test_an_internal_bug_is_503_not_500(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    service = client.app.state.intake  # type: ignore[attr-defined]

    async def boom(*_: Any) -> Any:
        raise RuntimeError("bug")

    monkeypatch.setattr(service, "ingest", boom)
    for send in ENDPOINTS.values():
        body = fixture_bytes(FIXTURE_NAMES[0]) if send is _am else json.dumps(
            {"name": "HighErrorRate", "service": "kamkmserve"} if send is _generic
            else metric_alert()).encode()  # fmt: skip
        reply = send(client, body)
        assert reply.status_code == 503 and reply.json()["error"] == "internal error"


@pytest.mark.parametrize("path", ["/alerts/generic", "/alerts/alertmanager", "/alerts/sentry", "/logs/vercel",
                                  "/slack/interactions"])
def test_a_get_on_a_post_only_endpoint_is_a_json_405_naming_the_allowed_method(client: TestClient, path: str) -> None:
    reply = client.get(path)
    assert reply.status_code == 405
    assert reply.headers["content-type"] == "application/json" and reply.headers["allow"] == "POST"
    body = reply.json()
    assert body["error"] == "method not allowed" and body["allowed"] == ["POST"]
    assert f"GET {path}" in body["detail"]


def test_an_unknown_path_is_a_json_404(client: TestClient) -> None:
    reply = client.post("/alerts/nagios", json={})
    assert reply.status_code == 404
    assert reply.json()["error"] == "not found" and "POST /alerts/nagios" in reply.json()["detail"]
