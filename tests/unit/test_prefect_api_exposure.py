"""``remediate check``'s "prefect api" row: a Prefect API that answers without credentials on an address other
machines can reach is degraded (anyone there can answer approvals); on loopback, or asking for the auth string (401),
it is ok; unreachable fails like the approvals row. Real HTTP servers on 127.0.0.1 stand in for the API; whether its
host counts as loopback is injected, and the decision itself is tested from a table."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from remediation.check import prefect_api_exposure, run_check
from remediation.orchestration.prefect_api import is_loopback_host
from remediation.settings import Settings
from tests.helpers.local_server import LocalHttpServer

SECRET = "admin:exposure-SECRET-1"


class FakePrefectApi(LocalHttpServer):
    """The part of Prefect 3.9.1's API this row touches: ``POST /api/flow_runs/filter``, and the auth middleware
    (``PREFECT_SERVER_API_AUTH_STRING``): 401 ``{"exception_message": "Unauthorized"}`` unless ``Authorization:
    Basic base64(auth string)``; ``GET /api/health`` stays public."""

    def __init__(self, auth_string: str | None = None) -> None:
        super().__init__()
        self.auth_string = auth_string
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []

    def _dispatch(self, handler: BaseHTTPRequestHandler) -> None:
        raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self.lock:
            self.seen.append((handler.command, handler.path, headers, raw))
        expected = f"Basic {base64.b64encode(self.auth_string.encode()).decode()}" if self.auth_string else None
        if handler.path == "/api/health" and handler.command == "GET":
            status, body = 200, "true"
        elif expected is not None and headers.get("authorization") != expected:
            status, body = 401, json.dumps({"exception_message": "Unauthorized"})
        elif handler.path == "/api/flow_runs/filter" and handler.command == "POST":
            status, body = 200, "[]"
        else:
            status, body = 404, json.dumps({"detail": "Not Found"})
        data = body.encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)


@pytest.fixture
def open_api() -> Iterator[FakePrefectApi]:
    with FakePrefectApi() as api:
        yield api


@pytest.fixture
def guarded_api() -> Iterator[FakePrefectApi]:
    with FakePrefectApi(auth_string=SECRET) as api:
        yield api


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once the socket is closed


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.10.20.30", True), ("localhost", True), ("LOCALHOST", True), ("::1", True),
    ("[::1]", True), ("::ffff:127.0.0.1", True),
    ("0.0.0.0", False), ("::", False), ("", False), ("10.0.0.5", False), ("192.168.1.20", False),
    ("203.0.113.7", False), ("::ffff:10.0.0.5", False), ("fe80::1%eth0", False), ("prefect.internal", False),
    ("localhost.example.com", False), ("127.0.0.1.nip.io", False),
])
def test_only_addresses_no_other_machine_can_reach_count_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


async def test_an_api_answering_without_credentials_on_loopback_is_ok(open_api: FakePrefectApi) -> None:
    row = await prefect_api_exposure(f"{open_api.url}/api", timeout_s=2.0)
    assert (row.capability, row.status, row.reachable) == ("prefect api", "ok", True)
    assert "on loopback only" in row.detail


async def test_an_api_answering_without_credentials_elsewhere_is_degraded_with_the_fix(
    open_api: FakePrefectApi
) -> None:
    row = await prefect_api_exposure(f"{open_api.url}/api", timeout_s=2.0, is_loopback=lambda host: False)
    assert row.status == "degraded" and row.reachable is True
    assert "answers without credentials on 127.0.0.1" in row.detail
    assert "PREFECT_SERVER_API_AUTH_STRING" in row.detail and "\n" not in row.detail


@pytest.mark.parametrize("loopback", [True, False])
async def test_an_api_that_asks_for_the_auth_string_is_ok_wherever_it_listens(guarded_api: FakePrefectApi,
                                                                              loopback: bool) -> None:
    row = await prefect_api_exposure(f"{guarded_api.url}/api", timeout_s=2.0, is_loopback=lambda host: loopback)
    assert row.status == "ok" and "refuses requests without credentials (HTTP 401)" in row.detail


async def test_the_probe_is_one_read_without_credentials(guarded_api: FakePrefectApi) -> None:
    await prefect_api_exposure(f"{guarded_api.url}/api/", timeout_s=2.0)
    ((method, path, headers, raw),) = guarded_api.seen
    assert (method, path, json.loads(raw)) == ("POST", "/api/flow_runs/filter", {"limit": 1})
    assert "authorization" not in headers


async def test_an_unreachable_api_fails_as_the_approvals_row_does() -> None:
    row = await prefect_api_exposure(f"http://127.0.0.1:{closed_port()}/api", timeout_s=2.0)
    assert (row.status, row.reachable) == ("failing", False) and "unreachable" in row.detail


async def test_without_a_configured_api_there_is_nothing_to_check() -> None:
    row = await prefect_api_exposure(None, timeout_s=2.0)
    assert row.status == "not checked" and "PREFECT_API_URL" in row.detail


async def test_remediate_check_shows_the_row_for_the_configured_api(open_api: FakePrefectApi, tmp_path: Path) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: f"{open_api.url}/api"}):
        report = await run_check(Settings(app_url="http://127.0.0.1:9", home=tmp_path, http_timeout_s=1.0))
    (row,) = [r for r in report.rows if r.capability == "prefect api"]
    assert row.status == "ok" and open_api.url in row.detail
    names = [r.capability for r in report.rows]
    assert names.index("approvals") < names.index("prefect api")
