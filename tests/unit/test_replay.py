"""The replay server answers with the real app's captured bytes, in capture order, and records what it was asked."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from remediation.replay import HOP_BY_HOP, ReplayServer, parse_capture
from tests.helpers import local_http

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "kamkmserve"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def replay() -> Iterator[ReplayServer]:
    with ReplayServer(FIXTURES) as server:
        yield server


def get(server: ReplayServer, target: str, method: str = "GET", **kwargs: object) -> httpx.Response:
    return local_http.request(method, server.url + target, timeout=10, **kwargs)  # type: ignore[arg-type]


def status_line(name: str) -> tuple[int, str]:
    line = (FIXTURES / name).read_bytes().split(b"\n")[3].decode()
    _, code, reason = line.split(" ", 2)
    return int(code), reason


@pytest.mark.parametrize(("target", "name"), [
    ("/api/monitoring/metrics", "default-1a-metrics-fresh-1.http"),
    ("/monitoring/metrics?format=health", "default-2a-format-health.http"),
    ("/monitoring/metrics?format=bogus", "default-2e-format-bogus.http"),
    ("/api/cart", "default-4c-get-api-cart.http"),
    ("/api/admin/orders/export", "default-6d-get-api-admin-orders-export-no-handler-check.http"),
])
def test_a_captured_request_gets_the_captured_status_headers_and_body_bytes(
        replay: ReplayServer, target: str, name: str) -> None:
    """Status and reason come from the file's status line; the body is exactly the bytes between the blank line
    and the capture tool's own line end; the headers are the file's, in order and letter case, less hop-by-hop."""
    response = get(replay, target)
    raw = (FIXTURES / name).read_bytes()
    assert (response.status_code, response.reason_phrase) == status_line(name)
    assert response.content and (b"\n\n" + response.content + b"\n") in raw
    after = raw.split(b"\n\n" + response.content + b"\n", 1)[1]
    assert after == b"" or after.startswith(b"--- server ")
    captured = [tuple(line.split(": ", 1)) for line in raw.split(b"\n\n", 1)[0].decode().split("\n")[4:]]
    kept = [(k, v) for k, v in captured if k.lower() not in HOP_BY_HOP]
    served = [(k.decode(), v.decode()) for k, v in response.headers.raw]
    assert served[:len(kept)] == kept
    assert served[len(kept):] == [("x-replay-capture", name), ("Content-Length", str(len(response.content)))]


def test_headers_only_captures_are_served_without_body_and_with_a_recomputed_length(replay: ReplayServer) -> None:
    """``curl -D - -o /dev/null`` captured no body: the captured Content-Length (126061) and the chunked/keep-alive
    hop-by-hop headers are not replayed, the length sent is that of what is served."""
    response = get(replay, "/")
    assert response.status_code == 200 and response.content == b""
    assert response.headers["content-length"] == "0"
    assert "transfer-encoding" not in response.headers and "keep-alive" not in response.headers
    assert response.headers["etag"] == '"7gmhkbfgrr2p7z"'


def test_several_captures_of_one_request_are_served_in_capture_order_and_the_last_is_kept(
        replay: ReplayServer) -> None:
    """The metrics page moves forward like the app's state did (fresh 1-3, after routes, after uploads, final) and
    then stays on the final capture: process_uptime_seconds never goes back, so no restart is faked."""
    expected = ["default-1a-metrics-fresh-1.http", "default-1b-metrics-fresh-2.http",
                "default-1c-metrics-fresh-3.http", "default-1d-metrics-after-other-routes.http",
                "default-1e-metrics-after-uploads.http", "default-1f-metrics-final.http",
                "default-1f-metrics-final.http", "default-1f-metrics-final.http"]
    responses = [get(replay, "/api/monitoring/metrics") for _ in expected]
    assert [r.headers["x-replay-capture"] for r in responses] == expected
    assert [r.content for r in responses] == [parse_capture(FIXTURES / name).body for name in expected]
    uptimes = [float(re.search(r"^process_uptime_seconds (\S+)$", r.text, re.M).group(1))  # type: ignore[union-attr]
               for r in responses]
    assert uptimes == sorted(uptimes)


def test_head_is_answered_from_the_get_capture_without_a_body(replay: ReplayServer) -> None:
    """HEAD gets GET's status, headers and Content-Length, and no body."""
    head = get(replay, "/monitoring/ready", method="HEAD")
    body = parse_capture(FIXTURES / "default-3b-monitoring-ready.http").body
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(body))
    assert head.headers["x-replay-capture"] == "default-3b-monitoring-ready.http"
    assert [(r.method, r.target) for r in replay.requests] == [("HEAD", "/monitoring/ready")]


def test_a_query_with_more_parameters_matches_the_capture_with_the_most_of_them(replay: ReplayServer) -> None:
    """``?format=health&window=5m`` is answered by the ``?format=health`` capture, not the query-less one."""
    response = get(replay, "/monitoring/metrics?window=5m&format=health")
    assert response.headers["x-replay-capture"] == "default-2a-format-health.http"
    assert response.json()["status"] in ("healthy", "warning", "critical")
    assert get(replay, "/monitoring/metrics?window=5m").headers["x-replay-capture"] == "default-2f-no-format.http"


@pytest.mark.parametrize(("target", "name"), [
    ("/no/such/page", "default-4e-get-nonexistent-headers-only.http"),
    ("/api/no-such-route", "default-3c-api-health.http"),
    ("/_sim/scenario", "default-4e-get-nonexistent-headers-only.http"),
])
def test_an_uncaptured_path_gets_the_apps_own_404(replay: ReplayServer, target: str, name: str) -> None:
    """Not captured: the 404 the real Next.js app gave for a path beside it, its rewrite header naming the path
    asked; the request is recorded as unmatched."""
    response = get(replay, target)
    assert response.status_code == 404
    assert response.headers["x-replay-capture"] == name
    assert response.content == parse_capture(FIXTURES / name).body
    assert response.headers["x-middleware-rewrite"] == target
    assert [(r.path, r.matched) for r in replay.requests] == [(target, False)]


def test_rate_limited_mode_answers_every_api_request_with_the_captured_429(replay: ReplayServer) -> None:
    """In rate-limited mode /api/* gets the limiter's 429 (Retry-After 60, its body); other paths are untouched."""
    replay.rate_limited = True
    for target in ("/api/monitoring/metrics", "/api/uploads", "/api/no-such-route"):
        response = get(replay, target)
        assert (response.status_code, response.text) == (429, "Too Many Requests")
        assert response.headers["retry-after"] == "60" and response.headers["ratelimit-remaining"] == "0"
    assert get(replay, "/monitoring/health").status_code == 200
    replay.rate_limited = False
    assert get(replay, "/api/monitoring/metrics").status_code == 200


def test_every_request_is_recorded_in_memory_and_in_the_jsonl_log(tmp_path: Path) -> None:
    """Method, target, headers and body of each request, and which capture answered, in arrival order."""
    log = tmp_path / "requests.jsonl"
    with ReplayServer(FIXTURES, log_path=log) as server:
        get(server, "/monitoring/health", headers={"x-request-id": "probe-1"})
        get(server, "/api/uploads", method="POST", files={"file": ("tiny.png", b"\x89PNG\r\n\x1a\n")})
        seen = server.requests
    assert [(r.method, r.target, r.status, r.capture) for r in seen] == [
        ("GET", "/monitoring/health", 200, "default-3a-monitoring-health.http"),
        ("POST", "/api/uploads", 200, "default-5a-upload-tiny-png.http"),
    ]
    assert seen[0].header("X-Request-Id") == "probe-1"
    assert b'filename="tiny.png"' in seen[1].body
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(entry["method"], entry["target"], entry["capture"]) for entry in lines] == [
        (r.method, r.target, r.capture) for r in seen]
    assert ["x-request-id", "probe-1"] in lines[0]["headers"]


def test_another_run_is_served_by_pattern_and_an_empty_selection_is_refused() -> None:
    """``pattern`` picks the captured run; a pattern matching nothing is an error, not an empty server."""
    with ReplayServer(FIXTURES, pattern="avreject-*.http") as server:
        response = get(server, "/api/uploads", method="POST", files={"file": ("tiny.png", b"x")})
        assert response.json() == {"error": "Malware scan failed: simulated-detection"}
    with pytest.raises(ValueError, match="no capture matches"):
        ReplayServer(FIXTURES, pattern="nothing-*.http")


def test_the_cli_serves_the_folder_prints_each_request_and_stops_cleanly_on_ctrl_c() -> None:
    """``remediate replay DIR --port 0`` prints its URL, answers from the captures, echoes the request, exits 0."""
    process = subprocess.Popen(
        [sys.executable, "-c", "from remediation.cli import app; app()", "replay", str(FIXTURES), "--port", "0"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={"PYTHONUNBUFFERED": "1", "PATH": "/usr/bin:/bin"},
    )
    try:
        assert process.stdout is not None
        banner = process.stdout.readline()
        url = re.search(r"http://127\.0\.0\.1:\d+", banner)
        assert url, banner
        assert local_http.get(url.group(0) + "/monitoring/ready", timeout=10).status_code == 200
        assert process.stdout.readline().strip() == \
            "GET /monitoring/ready -> 200 (default-3b-monitoring-ready.http)"
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0


def test_the_cli_refuses_a_folder_without_captures(tmp_path: Path) -> None:
    """A folder with nothing to replay exits 2 with the reason, never a traceback."""
    from typer.testing import CliRunner

    from remediation.cli import app

    result = CliRunner().invoke(app, ["replay", str(tmp_path)])
    assert result.exit_code == 2
    assert "no capture matches" in result.output


def test_parsing_reads_method_and_target_from_the_curl_line() -> None:
    """-X, -F/-d and plain curl give PATCH, POST and GET; the URL gives path and query."""
    parsed = {name: parse_capture(FIXTURES / name) for name in (
        "default-6c-patch-api-admin-upgrade-role-unauth.http", "default-5e-upload-wrong-content-type-json.http",
        "default-2b-format-summary.http")}
    assert [(c.method, c.path, c.query) for c in parsed.values()] == [
        ("PATCH", "/api/admin/upgrade-role", ""), ("POST", "/api/uploads", ""),
        ("GET", "/monitoring/metrics", "format=summary")]
    assert time.strptime(parsed["default-2b-format-summary.http"].at, "%Y-%m-%dT%H:%M:%S.%fZ")
