"""Request figures are computed from kamkmserve's raw samples; anything else is unknown, with a reason."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from remediation.providers.budget import RequestBudget
from remediation.providers.http import AppHttp
from remediation.providers.metrics import AppMetrics, parse_request_stats, percentile

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "kamkmserve"

HEADER = """# HELP process_uptime_seconds Process uptime in seconds
# TYPE process_uptime_seconds gauge
process_uptime_seconds 12.5
"""


def page(requests: list[tuple[str, str, int, int]]) -> str:
    lines = [HEADER.rstrip("\n")]
    if requests:
        lines += ["# HELP http_request_duration Auto-exported metric", "# TYPE http_request_duration gauge"]
        lines += [f'http_request_duration{{method="{m}",path="{p}",status="{s}"}} {d}' for m, p, s, d in requests]
    lines += ["# HELP http_requests_total Total HTTP requests observed", "# TYPE http_requests_total counter"]
    lines += [f'http_requests_total{{method="{m}",path="{p}",status="{s}"}} 1' for m, p, s, _ in requests]
    return "\n".join(lines) + "\n"


def fixture_body(name: str) -> tuple[int, dict[str, str], str]:
    raw = (FIXTURES / name).read_text()
    lines = raw.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith("HTTP/1.1"))
    status = int(lines[start].split()[1])
    blank = lines.index("", start)
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[start + 1:blank])}
    return status, headers, "\n".join(lines[blank + 1:])


def test_error_rate_counts_only_5xx_over_the_most_recent_window() -> None:
    older = [("GET", "/api/cart", 500, 10)] * 50  # outside the window
    recent = [("GET", "/", 200, 20)] * 90 + [("POST", "/api/checkout", 500, 30)] * 6 + [("GET", "/x", 404, 5)] * 4
    stats = parse_request_stats(page(older + recent), window_records=100)
    assert stats.available and stats.records == 100
    assert stats.errors_5xx == 6 and stats.errors_4xx == 4
    assert stats.error_rate_5xx_pct == 6.0
    assert [r.path for r in stats.failing_routes()] == ["/api/checkout"]


def test_latency_average_and_p95_from_raw_duration_samples() -> None:
    requests = [("GET", "/", 200, d) for d in range(1, 101)]
    stats = parse_request_stats(page(requests), window_records=100)
    assert stats.avg_ms == 50.5
    assert stats.p95_ms == 95.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0


def test_real_app_page_without_request_records_is_unknown_not_healthy() -> None:
    status, _, body = fixture_body("default-1f-metrics-final.http")
    assert status == 200
    stats = parse_request_stats(body, window_records=100)
    assert not stats.available
    assert stats.error_rate_5xx_pct is None
    assert "not emitted" in stats.reason
    assert stats.uptime_s is not None and stats.uptime_s > 0


def test_real_app_page_with_upload_counters_parses() -> None:
    _, _, body = fixture_body("default-1e-metrics-after-uploads.http")
    stats = parse_request_stats(body, window_records=100)
    assert not stats.available  # uploads counters exist, request records do not


def serve(status: int, body: str | bytes, headers: dict[str, str] | None = None) -> AppMetrics:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body, headers=headers or {"content-type": "text/plain"})

    http = AppHttp("http://app.test", RequestBudget(30), transport=httpx.MockTransport(handler))
    return AppMetrics(http)


@pytest.mark.parametrize(
    ("status", "body", "headers", "reason_part"),
    [
        (200, "<!DOCTYPE html><html><body>hi</body></html>", {"content-type": "text/html"}, "HTML page"),
        (200, "garbage %%% !!\x00", {"content-type": "text/plain"}, "unparseable"),
        (200, "foo{bar} 1\n", {"content-type": "text/plain"}, "unparseable"),
        (200, "some_other_metric 1\n", {"content-type": "text/plain"}, "not kamkmserve"),
        (503, "Service Unavailable", {"content-type": "text/html"}, "HTTP 503"),
        (500, '{"error":"Internal server error"}', {"content-type": "application/json"}, "HTTP 500"),
        (200, b"\xff\xfe\x00garbage", {"content-type": "text/plain"}, "unparseable"),
    ],
)
async def test_bad_metrics_pages_are_unknown_with_a_clear_reason(
    status: int, body: str | bytes, headers: dict[str, str], reason_part: str
) -> None:
    stats = await serve(status, body, headers).request_stats(100)
    assert not stats.available
    assert reason_part in stats.reason


async def test_429_is_unknown_rate_limited_and_blocks_the_next_read() -> None:
    status, headers, body = fixture_body("ratelimited-metrics-429.http")
    metrics = serve(status, body, headers)
    first = await metrics.request_stats(100)
    assert not first.available and first.rate_limited and "429" in first.reason
    second = await metrics.request_stats(100)
    assert not second.available and "not sent" in second.reason and second.rate_limited


async def test_unreachable_and_slow_endpoints_are_unknown() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    for handler, part in ((refuse, "unreachable"), (slow, "timed out")):
        http = AppHttp("http://app.test", RequestBudget(30), transport=httpx.MockTransport(handler))
        stats = await AppMetrics(http).request_stats(100)
        assert not stats.available and part in stats.reason


async def test_health_json_from_the_real_app_is_read_and_garbage_is_unknown() -> None:
    status, headers, body = fixture_body("default-2a-format-health.http")
    health = await serve(status, body, headers).health()
    assert health.available and health.status == "warning"
    assert health.memory_pct == pytest.approx(75.6317246835443)
    assert health.issues == ("Elevated memory usage",)
    broken = await serve(200, "<html>", {"content-type": "text/html"}).health()
    assert not broken.available and "not the health JSON" in broken.reason
