"""``MetricsCollector`` of src/lib/metrics.ts: raw samples in ring buffers, health and summary figures.

Behaviour mirrors the TypeScript class method by method, including what each writer logs, because the
runbooks' signals are exactly those side effects.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from kamkmserve_sim.applog import AppLog, RequestFields
from kamkmserve_sim.clock import Clock
from kamkmserve_sim.jsfmt import js_round
from kamkmserve_sim.process import SimulatedProcess

MAX_STORED_METRICS = 1000
MAX_STORED_REQUESTS = 500
HEALTH_WINDOW_MS = 300_000

HealthLevel = Literal["healthy", "warning", "critical"]


@dataclass(frozen=True)
class MetricSample:
    name: str
    value: float
    unit: str
    timestamp: int
    tags: Mapping[str, str] | None = None


@dataclass(frozen=True)
class RequestRecord:
    path: str
    method: str
    status_code: int
    duration: int
    timestamp: int
    user_agent: str | None = None
    ip: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class AppError:
    """A JavaScript Error as the collector sees it."""

    name: str
    message: str
    stack: str | None = None


@dataclass(frozen=True)
class SystemMetrics:
    timestamp: int
    used: int
    total: int
    percentage: float
    uptime: float


@dataclass(frozen=True)
class RequestSummary:
    total: int
    avg_duration: int
    error_rate: float
    slow_requests: int


@dataclass(frozen=True)
class HealthStatus:
    status: HealthLevel
    memory_usage: float
    error_rate: float
    avg_response_time: int
    issues: tuple[str, ...]


class MetricsCollector:
    def __init__(self, log: AppLog, clock: Clock, process: SimulatedProcess) -> None:
        self._log = log
        self._clock = clock
        self.process = process
        self.metrics: deque[MetricSample] = deque(maxlen=MAX_STORED_METRICS)
        self.requests: deque[RequestRecord] = deque(maxlen=MAX_STORED_REQUESTS)
        self.error_counts: dict[str, int] = {}

    def system(self) -> SystemMetrics:
        heap = self.process.heap()
        return SystemMetrics(
            timestamp=self._clock.now_ms(), used=heap.used, total=heap.total,
            percentage=(heap.used / heap.total) * 100, uptime=self.process.uptime_s(),
        )

    def record_metric(self, name: str, value: float, unit: str = "count",
                      tags: Mapping[str, str] | None = None, *, at_ms: int | None = None) -> None:
        at = self._clock.now_ms() if at_ms is None else at_ms
        self.metrics.append(MetricSample(name, value, unit, at, dict(tags) if tags is not None else None))
        if _is_significant(name, value, unit):
            context: dict[str, object] = {"value": value, "unit": unit}
            if tags is not None:
                context["tags"] = dict(tags)
            context["metric"] = True
            self._log.log("info", f"Metric recorded: {name}", context, at_ms=at)

    def record_request(self, request: RequestFields, duration: int, status_code: int,
                       error: AppError | None = None, *, at_ms: int | None = None) -> None:
        at = self._clock.now_ms() if at_ms is None else at_ms
        self.requests.append(RequestRecord(
            path=request.path, method=request.method, status_code=status_code, duration=duration,
            timestamp=at, user_agent=request.user_agent, ip=request.ip,
            error=error.message if error else None,
        ))
        tags = {"method": request.method, "path": request.path, "status": str(status_code)}
        self.record_metric("http_request_duration", duration, "ms", tags, at_ms=at)
        self.record_metric("http_request_count", 1, "count", tags, at_ms=at)
        if duration > 1000:
            self._log.log("warn", f"Slow request detected: {request.method} {request.path}",
                          {"duration": duration, "statusCode": status_code, "slowRequest": True}, at_ms=at)
        if error is not None:
            self.record_error(error, request, at_ms=at)

    def record_database_operation(self, operation: str, table: str, duration: int, success: bool,
                                  error: AppError | None = None, *, at_ms: int | None = None) -> None:
        at = self._clock.now_ms() if at_ms is None else at_ms
        tags = {"operation": operation, "table": table, "success": "true" if success else "false"}
        self.record_metric("db_operation_duration", duration, "ms", tags, at_ms=at)
        self.record_metric("db_operation_count", 1, "count", tags, at_ms=at)
        if duration > 500:
            slow: dict[str, object] = {"duration": duration, "success": success}
            if error is not None:
                slow["error"] = error.message
            slow["slowDbOperation"] = True
            self._log.log("warn", f"Slow database operation: {operation} on {table}", slow, at_ms=at)
        if error is not None:
            failed: dict[str, object] = {"duration": duration, "error": error.message}
            if error.stack is not None:
                failed["stack"] = error.stack
            failed["dbError"] = True
            self._log.log("error", f"Database operation failed: {operation} on {table}", failed, at_ms=at)

    def record_error(self, error: AppError, request: RequestFields | None = None,
                     *, at_ms: int | None = None) -> None:
        key = f"{error.name}:{error.message}"
        count = self.error_counts.get(key, 0) + 1
        self.error_counts[key] = count
        path = request.path if request is not None else None
        self.record_metric("error_count", 1, "count", {"type": error.name, "path": path or "unknown"}, at_ms=at_ms)
        context: dict[str, object] = {"message": error.message}
        if error.stack is not None:
            context["stack"] = error.stack
        if request is not None:
            context["path"] = request.path
            context["method"] = request.method
        context["count"] = count
        context["errorTracking"] = True
        self._log.security(f"Error occurred: {error.name}", context, request, at_ms=at_ms)

    def summary(self, window_ms: int = HEALTH_WINDOW_MS) -> tuple[RequestSummary, list[tuple[str, int]]]:
        now = self._clock.now_ms()
        recent = [r for r in self.requests if now - r.timestamp < window_ms]
        total = len(recent)
        errors = sum(1 for r in recent if r.status_code >= 400)  # 4xx count as errors, as in the app
        slow = sum(1 for r in recent if r.duration > 1000)
        avg = sum(r.duration for r in recent) / total if total else 0.0
        top_errors = sorted(
            ((key.split(":")[0], count) for key, count in self.error_counts.items()), key=lambda item: -item[1]
        )[:10]
        return RequestSummary(
            total=total, avg_duration=js_round(avg),
            error_rate=(errors / total) * 100 if total else 0, slow_requests=slow,
        ), top_errors

    def health_status(self) -> HealthStatus:
        requests, _ = self.summary()
        memory = self.system().percentage
        issues: list[str] = []
        status: HealthLevel = "healthy"
        # Same rule order and the same "critical is never downgraded" behaviour as getHealthStatus().
        for value, high, elevated, what in ((memory, 90, 75, "memory usage"),
                                            (requests.error_rate, 10, 5, "error rate"),
                                            (requests.avg_duration, 2000, 1000, "response time")):
            if value > high:
                issues.append(f"High {what}")
                status = "critical"
            elif value > elevated:
                issues.append(f"Elevated {what}")
                if status == "healthy":
                    status = "warning"
        return HealthStatus(status=status, memory_usage=memory, error_rate=requests.error_rate,
                            avg_response_time=requests.avg_duration, issues=tuple(issues))


def _is_significant(name: str, value: float, unit: str) -> bool:
    """``shouldLogMetric``: which samples also produce a ``Metric recorded`` info line."""
    if "error" in name or "failure" in name:
        return True
    if unit == "ms" and value > 1000:
        return True
    return "memory" in name and value > 75
