"""MetricsCollector semantics: ring buffers, exposition order, what each writer logs, health rules."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from kamkmserve_sim.applog import AppLog, RequestFields
from kamkmserve_sim.collector import AppError, MetricsCollector
from kamkmserve_sim.exposition import health_json, metrics_page
from kamkmserve_sim.process import HeapSample
from prometheus_client.parser import text_string_to_metric_families


class FakeClock:
    def __init__(self, now_ms: int = 1_795_706_847_256) -> None:
        self.ms = now_ms
        self.ns = 6_867_053_380

    def now_ms(self) -> int:
        return self.ms

    def monotonic_ns(self) -> int:
        return self.ns


@dataclass
class FixedProcess:
    used: int = 48_213_504
    total: int = 71_303_168
    uptime: float = 3712.48

    def heap(self) -> HeapSample:
        return HeapSample(self.used, self.total)

    def uptime_s(self) -> float:
        return self.uptime


def make(process: FixedProcess | None = None) -> tuple[MetricsCollector, AppLog, FakeClock]:
    clock = FakeClock()
    log = AppLog(clock)
    return MetricsCollector(log, clock, process or FixedProcess()), log, clock  # type: ignore[arg-type]


GET_ORDERS = RequestFields(path="/api/admin/orders", method="GET", user_agent="curl/8.5.0", ip="203.0.113.9")


def test_metric_ring_keeps_the_newest_1000_samples() -> None:
    collector, _, _ = make()
    for index in range(1200):
        collector.record_metric("upload_accepted", index)
    assert len(collector.metrics) == 1000
    assert collector.metrics[0].value == 200 and collector.metrics[-1].value == 1199


def test_request_ring_keeps_the_newest_500_records_and_two_metrics_each() -> None:
    collector, _, _ = make()
    for index in range(600):
        collector.record_request(RequestFields(path=f"/p{index}", method="GET"), 10, 200)
    assert len(collector.requests) == 500
    assert collector.requests[0].path == "/p100"
    assert len(collector.metrics) == 1000


def test_reference_example_page_is_reproduced_byte_for_byte() -> None:
    collector, _, _ = make()
    collector.record_metric("upload_rejected_validation", 1)
    collector.record_metric("upload_rejected_validation", 1)
    assert metrics_page(collector) == (
        "# HELP process_uptime_seconds Process uptime in seconds\n"
        "# TYPE process_uptime_seconds gauge\n"
        "process_uptime_seconds 3712.48\n"
        "# HELP process_memory_used_bytes Heap used bytes\n"
        "# TYPE process_memory_used_bytes gauge\n"
        "process_memory_used_bytes 48213504\n"
        "# HELP process_memory_total_bytes Heap total bytes\n"
        "# TYPE process_memory_total_bytes gauge\n"
        "process_memory_total_bytes 71303168\n"
        "# HELP upload_rejected_validation Auto-exported metric\n"
        "# TYPE upload_rejected_validation gauge\n"
        "upload_rejected_validation 1\n"
        "upload_rejected_validation 1\n"
        "# HELP http_requests_total Total HTTP requests observed\n"
        "# TYPE http_requests_total counter\n"
    )


def test_request_records_print_the_dead_path_line_shapes_of_the_reference() -> None:
    collector, _, _ = make()
    collector.record_request(GET_ORDERS, 1432, 500)
    page = metrics_page(collector)
    assert 'http_request_duration{method="GET",path="/api/admin/orders",status="500"} 1432\n' in page
    assert 'http_request_count{method="GET",path="/api/admin/orders",status="500"} 1\n' in page
    assert page.endswith('http_requests_total{method="GET",path="/api/admin/orders",status="500"} 1\n')
    names = [f.name for f in text_string_to_metric_families(page)]
    assert names[-3:] == ["http_request_duration", "http_request_count", "http_requests"]


def test_names_follow_first_seen_order_among_the_samples_still_held() -> None:
    collector, _, _ = make()
    collector.record_metric("b_metric", 1)
    collector.record_metric("a_metric", 1)
    collector.record_metric("b_metric", 2)
    page = metrics_page(collector)
    assert page.index("# HELP b_metric") < page.index("# HELP a_metric")
    for _ in range(998):  # 1001 samples: only the first b_metric falls out, so a_metric is the oldest held
        collector.record_metric("c_metric", 1)
    page = metrics_page(collector)
    assert page.index("# HELP a_metric") < page.index("# HELP b_metric")


def test_label_values_escape_backslash_newline_and_quote() -> None:
    collector, _, _ = make()
    collector.record_metric("odd", 2.5, "count", {"path": 'a\\b\n"c"'})
    assert 'odd{path="a\\\\b\\n\\"c\\""} 2.5\n' in metrics_page(collector)


def test_slow_request_logs_a_warning_and_a_metric_line() -> None:
    collector, log, _ = make()
    collector.record_request(GET_ORDERS, 1432, 500)
    texts = [line.text for line in log.lines()]
    assert texts == [
        '{"timestamp":"2026-11-26T15:27:27.256Z","level":"info","message":"Metric recorded: http_request_duration",'
        '"context":{"value":1432,"unit":"ms","tags":{"method":"GET","path":"/api/admin/orders","status":"500"},'
        '"metric":true}}',
        '{"timestamp":"2026-11-26T15:27:27.256Z","level":"warn","message":"Slow request detected: GET '
        '/api/admin/orders","context":{"duration":1432,"statusCode":500,"slowRequest":true}}',
    ]
    assert [line.stream for line in log.lines()] == ["stdout", "stderr"]


def test_fast_requests_log_nothing() -> None:
    collector, log, _ = make()
    collector.record_request(GET_ORDERS, 1000, 200)
    assert log.lines() == []


def test_record_error_counts_logs_a_security_event_with_request_fields() -> None:
    collector, log, _ = make()
    error = AppError("TypeError", "boom", "TypeError: boom\n    at x")
    collector.record_request(GET_ORDERS, 12, 500, error)
    collector.record_request(GET_ORDERS, 12, 500, error)
    assert collector.error_counts == {"TypeError:boom": 2}
    last = json.loads(log.lines()[-1].text)
    assert list(last) == ["timestamp", "level", "message", "context", "path", "method", "userAgent", "ip"]
    assert last["message"] == "Security event: Error occurred: TypeError"
    assert list(last["context"]) == ["message", "stack", "path", "method", "count", "errorTracking",
                                     "securityEvent", "timestamp"]
    assert last["context"]["count"] == 2
    assert 'error_count{type="TypeError",path="/api/admin/orders"} 1' in metrics_page(collector)


def test_failed_database_operation_logs_slow_and_failure_lines() -> None:
    collector, log, _ = make()
    collector.record_database_operation("INSERT", "kamkmserve_order", 700, False, AppError("E", "down", "E: down"))
    messages = [json.loads(line.text)["message"] for line in log.lines()]
    assert messages == ["Slow database operation: INSERT on kamkmserve_order",
                        "Database operation failed: INSERT on kamkmserve_order"]
    assert 'db_operation_count{operation="INSERT",table="kamkmserve_order",success="false"} 1' in \
        metrics_page(collector)


@pytest.mark.parametrize(
    ("used", "statuses", "durations", "status", "issues"),
    [
        (50, [200] * 10, [100] * 10, "healthy", []),
        (76, [200] * 10, [100] * 10, "warning", ["Elevated memory usage"]),
        (91, [200] * 10, [100] * 10, "critical", ["High memory usage"]),
        (50, [200] * 19 + [404], [100] * 20, "healthy", []),  # exactly 5 %: not above
        (50, [200] * 9 + [401], [100] * 10, "warning", ["Elevated error rate"]),  # 4xx count
        (50, [200] * 8 + [500] * 2, [100] * 10, "critical", ["High error rate"]),
        (50, [200] * 10, [1001] * 10, "warning", ["Elevated response time"]),
        (50, [200] * 10, [2001] * 10, "critical", ["High response time"]),
        (91, [200] * 9 + [500], [1500] * 10, "critical",
         ["High memory usage", "Elevated error rate", "Elevated response time"]),  # never downgraded
    ],
)
def test_health_status_rules_match_get_health_status(used: int, statuses: list[int], durations: list[int],
                                                     status: str, issues: list[str]) -> None:
    collector, _, _ = make(FixedProcess(used=used, total=100))
    for code, duration in zip(statuses, durations, strict=True):
        collector.record_request(RequestFields(path="/x", method="GET"), duration, code)
    health = collector.health_status()
    assert (health.status, list(health.issues)) == (status, issues)


def test_health_json_uses_a_five_minute_window_and_rounds_the_average() -> None:
    collector, _, clock = make(FixedProcess(used=50, total=100))
    collector.record_request(RequestFields(path="/old", method="GET"), 5000, 500, at_ms=clock.ms - 300_000)
    collector.record_request(RequestFields(path="/x", method="GET"), 100, 200)
    collector.record_request(RequestFields(path="/x", method="GET"), 101, 404)
    body = health_json(collector, clock.ms)
    assert body == ('{"status":"critical","timestamp":"2026-11-26T15:27:27.256Z","metrics":{"memoryUsage":50,'
                    '"errorRate":50,"avgResponseTime":101},"issues":["High error rate"]}')


def test_health_json_with_no_records_reports_zeros_like_the_app_today() -> None:
    collector, _, clock = make(FixedProcess(used=99839544, total=137261056))
    assert health_json(collector, clock.ms) == (
        '{"status":"healthy","timestamp":"2026-11-26T15:27:27.256Z","metrics":{"memoryUsage":72.73697792329385,'
        '"errorRate":0,"avgResponseTime":0},"issues":[]}'
    )
