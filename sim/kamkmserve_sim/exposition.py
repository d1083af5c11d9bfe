"""The two metric bodies the app serves: the Prometheus page (§2.1) and ``format=health`` JSON (§2.2)."""

from __future__ import annotations

from kamkmserve_sim.collector import MetricSample, MetricsCollector
from kamkmserve_sim.jsfmt import js_iso, js_json, js_number


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def metrics_page(collector: MetricsCollector) -> str:
    """``toPrometheus()`` of src/app/api/monitoring/metrics/route.ts, byte for byte."""
    system = collector.system()
    lines = [
        "# HELP process_uptime_seconds Process uptime in seconds",
        "# TYPE process_uptime_seconds gauge",
        f"process_uptime_seconds {js_number(system.uptime)}",
        "# HELP process_memory_used_bytes Heap used bytes",
        "# TYPE process_memory_used_bytes gauge",
        f"process_memory_used_bytes {js_number(system.used)}",
        "# HELP process_memory_total_bytes Heap total bytes",
        "# TYPE process_memory_total_bytes gauge",
        f"process_memory_total_bytes {js_number(system.total)}",
    ]
    # A Map keyed by name keeps first-seen order over the samples currently held, so names reorder as the
    # ring evicts; every sample is its own line, never aggregated.
    by_name: dict[str, list[MetricSample]] = {}
    for sample in collector.metrics:
        by_name.setdefault(sample.name, []).append(sample)
    for name, samples in by_name.items():
        lines.append(f"# HELP {name} Auto-exported metric")
        lines.append(f"# TYPE {name} gauge")
        for sample in samples:
            labels = ""
            if sample.tags is not None:
                labels = "{" + ",".join(f'{k}="{escape_label_value(v)}"' for k, v in sample.tags.items()) + "}"
            lines.append(f"{name}{labels} {js_number(sample.value)}")
    lines.append("# HELP http_requests_total Total HTTP requests observed")
    lines.append("# TYPE http_requests_total counter")
    for record in collector.requests:
        labels = (f'{{method="{escape_label_value(record.method)}",path="{escape_label_value(record.path)}",'
                  f'status="{record.status_code}"}}')
        lines.append(f"http_requests_total{labels} 1")
    return "\n".join(lines) + "\n"


def health_json(collector: MetricsCollector, now_ms: int) -> str:
    """``format=health`` body: getHealthStatus() over the fixed 5-minute window, JSON.stringify'd."""
    health = collector.health_status()
    return js_json({
        "status": health.status,
        "timestamp": js_iso(now_ms),
        "metrics": {
            "memoryUsage": health.memory_usage,
            "errorRate": health.error_rate,
            "avgResponseTime": health.avg_response_time,
        },
        "issues": list(health.issues),
    })
