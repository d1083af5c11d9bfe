"""Fidelity against the captured run of the real app (fixtures/kamkmserve): replaying it gives the same bytes.

Only genuinely volatile values are masked: dates, rate-limit reset epochs, uptime/heap figures, durations,
ports, and the size/ETag of the HTML pages (the simulator serves a stand-in page body).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from kamkmserve_sim import SimConfig, SimServer
from kamkmserve_sim.faults import Fault

from tests.sim.simkit import FIXTURES, Exchange, fetch, load_fixture, mask_numbers

CURL = {"User-Agent": "curl/7.88.1", "Accept": "*/*"}
BOUNDARY = "------------------------simboundary"
TINY_PNG = b"\x89PNG\r\n\x1a\n" + bytes(60)


def multipart(field_name: str, filename: str | None, content_type: str | None, data: bytes) -> bytes:
    disposition = f'form-data; name="{field_name}"' + (f'; filename="{filename}"' if filename else "")
    head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n"
    if content_type:
        head += f"Content-Type: {content_type}\r\n"
    return head.encode() + b"\r\n" + data + f"\r\n--{BOUNDARY}--\r\n".encode()


@dataclass(frozen=True)
class Replay:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None


FORM = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
METRICS = Replay("GET", "/api/monitoring/metrics")
REQUESTS: dict[str, Replay] = {
    "default-1a-metrics-fresh-1.http": METRICS,
    "default-1b-metrics-fresh-2.http": METRICS,
    "default-1c-metrics-fresh-3.http": METRICS,
    "default-1d-metrics-after-other-routes.http": METRICS,
    "default-1e-metrics-after-uploads.http": METRICS,
    "default-1f-metrics-final.http": METRICS,
    "default-2a-format-health.http": Replay("GET", "/monitoring/metrics?format=health"),
    "default-2b-format-summary.http": Replay("GET", "/monitoring/metrics?format=summary"),
    "default-2c-format-full.http": Replay("GET", "/monitoring/metrics?format=full"),
    "default-2d-format-prometheus.http": Replay("GET", "/monitoring/metrics?format=prometheus"),
    "default-2e-format-bogus.http": Replay("GET", "/monitoring/metrics?format=bogus"),
    "default-2f-no-format.http": Replay("GET", "/monitoring/metrics"),
    "default-2g-format-health-after-other-routes.http": Replay("GET", "/monitoring/metrics?format=health"),
    "default-2h-format-health-after-uploads.http": Replay("GET", "/monitoring/metrics?format=health"),
    "default-2i-format-summary-after-uploads.http": Replay("GET", "/monitoring/metrics?format=summary"),
    "default-2j-format-health-final.http": Replay("GET", "/monitoring/metrics?format=health"),
    "default-3a-monitoring-health.http": Replay("GET", "/monitoring/health"),
    "default-3b-monitoring-ready.http": Replay("GET", "/monitoring/ready"),
    "default-3c-api-health.http": Replay("GET", "/api/health"),
    "default-3d-monitoring-health-with-x-request-id.http":
        Replay("GET", "/monitoring/health", {"x-request-id": "probe-3d"}),
    "default-4a-get-headers-only.http": Replay("GET", "/"),
    "default-4b-get-services-headers-only.http": Replay("GET", "/services"),
    "default-4c-get-api-cart.http": Replay("GET", "/api/cart"),
    "default-4d-get-api-checkout.http": Replay("GET", "/api/checkout"),
    "default-4e-get-nonexistent-headers-only.http": Replay("GET", "/nonexistent"),
    "default-4f-get-api-contact.http": Replay("GET", "/api/contact"),
    "default-5a-upload-tiny-png.http": Replay(
        "POST", "/api/uploads", {**FORM, "x-forwarded-for": "203.0.113.7, 10.0.0.1"},
        multipart("file", "tiny.png", "image/png", TINY_PNG)),
    "default-5b-upload-evil-exe-disallowed-ext.http": Replay(
        "POST", "/api/uploads", {**FORM, "x-forwarded-for": "203.0.113.7"},
        multipart("file", "evil.exe", "application/octet-stream", b"MZ\x90\x00evil")),
    "default-5c-upload-notes-txt-disallowed-ext.http": Replay(
        "POST", "/api/uploads", FORM, multipart("file", "notes.txt", "text/plain", b"notes\n")),
    "default-5d-upload-fake-png-text-content-png-name.http": Replay(
        "POST", "/api/uploads", FORM, multipart("file", "fake.png", "text/plain", b"this is text\n")),
    "default-5e-upload-wrong-content-type-json.http": Replay(
        "POST", "/api/uploads", {"Content-Type": "application/json"}, b'{"a":1}'),
    "default-5f-upload-multipart-without-file-field.http": Replay(
        "POST", "/api/uploads", FORM, multipart("other", None, None, b"x")),
    "default-5g-upload-tiny-png-2.http": Replay(
        "POST", "/api/uploads", FORM, multipart("file", "tiny.png", "image/png", TINY_PNG)),
    "default-6a-get-api-admin-orders-unauth.http": Replay("GET", "/api/admin/orders"),
    "default-6b-get-api-admin-services-unauth.http": Replay(
        "GET", "/api/admin/services", {"x-request-id": "probe-6b", "x-forwarded-for": "198.51.100.9"}),
    "default-6c-patch-api-admin-upgrade-role-unauth.http": Replay(
        "PATCH", "/api/admin/upgrade-role", {"Content-Type": "application/json"}, b'{"userId":"user_x"}'),
    "default-6d-get-api-admin-orders-export-no-handler-check.http": Replay("GET", "/api/admin/orders/export"),
    "default-6e-get-api-admin-coupons-abc-no-handler-check.http": Replay("GET", "/api/admin/coupons/abc"),
    "default-6f-get-admin-page-headers-only.http": Replay("GET", "/admin"),
    "default-6g-get-admin-orders-with-basic-auth-header.http":
        Replay("GET", "/admin/orders", {"Authorization": "Basic YWRtaW46cHc="}),
}

# Header values that legitimately differ between two runs of the same app.
ALWAYS_VOLATILE = {"date", "ratelimit-reset"}
HTML_VOLATILE = {"etag", "content-length"}


def captured_order() -> list[str]:
    """The default run's fixtures in the order they were captured (their ``# at`` lines)."""
    stamped = []
    for path in FIXTURES.glob("default-*.http"):
        at = path.read_text(encoding="utf-8").split("\n")[2]
        stamped.append((at, path.name))
    return [name for _, name in sorted(stamped)]


def replay(server: SimServer, name: str) -> Exchange:
    request = REQUESTS[name]
    return fetch(server.url, request.path, method=request.method, headers={**CURL, **request.headers},
                 body=request.body)


def assert_same_header_block(actual: Exchange, expected: Exchange, port: int) -> None:
    assert actual.status_line == expected.status_line
    assert [name for name, _ in actual.headers] == [name for name, _ in expected.headers]
    html = (expected.header("content-type") or "").startswith("text/html") and expected.header("etag") != \
        '"g6ni37cb2ux0p"'
    for (name, value), (_, wanted) in zip(actual.headers, expected.headers, strict=True):
        key = name.lower()
        if key in ALWAYS_VOLATILE or (key in HTML_VOLATILE and (html or key == "content-length")):
            continue
        if key == "location":
            value = value.replace(f"localhost%3A{port}", "localhost%3A3000")
        assert value == wanted, f"{name}: {value!r} != {wanted!r}"


def assert_same_body(actual: Exchange, expected: Exchange) -> None:
    if expected.header("content-type") == "text/html; charset=utf-8" or not expected.body:
        assert expected.body == "" or actual.body.startswith("<!DOCTYPE html>")
        return
    if '"metrics":{"memoryUsage"' in expected.body:
        assert_same_health_shape(actual.body)
        return
    # A capture file cannot tell a body's own final newline from the file's, so both are compared without.
    assert mask_numbers(actual.body.rstrip("\n")).split("\n") == mask_numbers(expected.body).split("\n")


def assert_same_health_shape(body: str) -> None:
    parsed = json.loads(body)
    assert list(parsed) == ["status", "timestamp", "metrics", "issues"]
    assert list(parsed["metrics"]) == ["memoryUsage", "errorRate", "avgResponseTime"]
    assert parsed["metrics"]["errorRate"] == 0 and parsed["metrics"]["avgResponseTime"] == 0  # as-is
    memory = parsed["metrics"]["memoryUsage"]
    expected_issue = ["High memory usage"] if memory > 90 else ["Elevated memory usage"] if memory > 75 else []
    assert parsed["issues"] == expected_issue
    assert parsed["status"] == ("critical" if memory > 90 else "warning" if memory > 75 else "healthy")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", parsed["timestamp"])


@pytest.fixture(scope="module")
def replayed_run() -> Iterator[tuple[SimServer, dict[str, Exchange]]]:
    """The default run replayed against an as-is simulator with the database unreachable, as captured.

    Tests only read the answers and the printed lines, so one replay serves them all (one test stops it).
    """
    server = SimServer(SimConfig(seed=7, rps=0, request_metrics=False)).start()
    assert server.state is not None
    server.state.dependency_fault = Fault(error_share=1.0, paths=("/",))
    try:
        yield server, {name: replay(server, name) for name in captured_order()}
    finally:
        server.stop()


def test_every_captured_response_has_the_same_status_header_block_and_body(
        replayed_run: tuple[SimServer, dict[str, Exchange]]) -> None:
    server, answers = replayed_run
    assert len(answers) == len(REQUESTS)
    for name, actual in answers.items():
        expected = load_fixture(name)
        try:
            assert_same_header_block(actual, expected, server.config.port)
            assert_same_body(actual, expected)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from exc


def test_replayed_run_prints_the_captured_log_lines_on_the_same_streams(
        replayed_run: tuple[SimServer, dict[str, Exchange]]) -> None:
    server, _ = replayed_run
    assert server.state is not None
    log = server.state.log
    server.stop()  # SIGTERM's warning line ends the captured stderr
    for stream in ("stdout", "stderr"):
        expected = (FIXTURES / f"logs-default.{stream}").read_text(encoding="utf-8").rstrip("\n").split("\n")
        actual = [line.text for line in log.lines(stream=stream)]  # type: ignore[arg-type]
        assert [mask_numbers(line) for line in actual] == [mask_numbers(line) for line in expected]


def test_upload_responses_print_their_log_lines_as_captured(
        replayed_run: tuple[SimServer, dict[str, Exchange]]) -> None:
    server, _ = replayed_run
    assert server.state is not None
    printed = [mask_numbers(line.text) for line in server.state.log.lines()]
    for name in REQUESTS:
        for line in load_fixture(name).server_stdout + load_fixture(name).server_stderr:
            assert mask_numbers(line) in printed, f"{name}: {line}"


def test_metrics_page_fresh_matches_the_captured_one_line_by_line(start_sim: Callable[..., SimServer]) -> None:
    server = start_sim(rps=0, request_metrics=False)
    actual = fetch(server.url, "/api/monitoring/metrics", headers=CURL)
    expected = load_fixture("default-1a-metrics-fresh-1.http")
    assert mask_numbers(actual.body).split("\n") == mask_numbers(expected.body + "\n").split("\n")
    assert re.search(r"^process_uptime_seconds \d+\.\d+$", actual.body, re.M)
    assert actual.body.endswith("# TYPE http_requests_total counter\n")


def test_rate_limited_response_matches_the_captured_429(start_sim: Callable[..., SimServer]) -> None:
    server = start_sim(rps=0)
    for _ in range(100):
        assert fetch(server.url, "/api/monitoring/metrics", headers=CURL).status == 200
    actual = fetch(server.url, "/api/monitoring/metrics", headers=CURL)
    expected = load_fixture("ratelimited-metrics-429.http")
    assert actual.status_line == expected.status_line
    # h11 always writes its framing header as "Transfer-Encoding"; Node's middleware answer used lower case.
    assert [n if n != "Transfer-Encoding" else n.lower() for n, _ in actual.headers] == \
        [n for n, _ in expected.headers]
    for (name, value), (_, wanted) in zip(actual.headers, expected.headers, strict=True):
        if name.lower() in ("date", "ratelimit-reset", "retry-after"):
            continue
        if name == "x-middleware-rewrite":  # captured while the app proxied into itself via localhost
            assert wanted.endswith(value)
            continue
        assert value == wanted, name
    assert 1 <= int(actual.header("retry-after") or 0) <= 60
    assert actual.body == expected.body == "Too Many Requests"
