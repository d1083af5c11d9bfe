"""Reading kamkmserve's own metrics over HTTP: the same code runs against the simulator and the real app.

The app exports raw samples, not counters: ``/api/monitoring/metrics`` prints one line per stored request
record (a ring buffer of the last 500, in arrival order) and one ``http_request_duration`` line per
request. We therefore compute error rate, average and p95 over the *most recent N records* it holds.
Against the app as it is today those series are dead: the header is there with no records, and every
request-derived figure is ``unknown``, never healthy.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from remediation.models import utcnow
from remediation.providers.http import AppHttp, AppReadTally, Fetched
from remediation.providers.promtext import tail_samples
from remediation.stats import percentile

METRICS_PATH = "/api/monitoring/metrics"
HEALTH_PATH = "/monitoring/metrics"
#: The series a request reading uses (sample names as printed); the rest of the page is not parsed.
REQUEST_SERIES = ("process_uptime_seconds", "http_requests_total", "http_request_duration")

if TYPE_CHECKING:
    from remediation.providers.capabilities import Metrics
    from remediation.providers.dbops import DbOperationStats
    from remediation.providers.uploadstats import UploadCounts


class RouteStats(BaseModel):
    model_config = ConfigDict(frozen=True)

    method: str
    path: str
    total: int
    errors_5xx: int
    # Latency of this route's own ``http_request_duration`` samples among the most recent window (None: none).
    avg_ms: float | None = None
    p95_ms: float | None = None
    latency_samples: int = 0


class RequestStats(BaseModel):
    """Request-derived figures; ``available`` False means every figure is unknown and ``reason`` says why."""

    model_config = ConfigDict(frozen=True)

    available: bool
    reason: str = ""
    at: datetime = Field(default_factory=utcnow)
    records: int = 0
    errors_5xx: int = 0
    errors_4xx: int = 0
    error_rate_5xx_pct: float | None = None
    avg_ms: float | None = None
    p95_ms: float | None = None
    latency_samples: int = 0
    routes: tuple[RouteStats, ...] = ()
    rate_limited: bool = False
    uptime_s: float | None = None
    # The page was read and is the app's, but holds no request series (the real app never emits them).
    no_request_series: bool = False

    def failing_routes(self) -> list[RouteStats]:
        return sorted((r for r in self.routes if r.errors_5xx), key=lambda r: (-r.errors_5xx, r.path))

    def hottest_routes(self, min_samples: int = 1) -> list[RouteStats]:
        """Routes by p95, slowest first; routes with fewer than ``min_samples`` duration samples are left out
        (one slow request on a rare path is not a hot endpoint)."""
        timed = [r for r in self.routes if r.p95_ms is not None and r.latency_samples >= min_samples]
        return sorted(timed, key=lambda r: (-(r.p95_ms or 0.0), r.path, r.method))


class HealthReading(BaseModel):
    """``/monitoring/metrics?format=health``. Its status flips on heap ratio alone: report, never trust."""

    model_config = ConfigDict(frozen=True)

    available: bool
    reason: str = ""
    status: str | None = None
    memory_pct: float | None = None
    error_rate_pct: float | None = None  # counts 4xx as errors, over 5 min
    avg_response_ms: float | None = None
    issues: tuple[str, ...] = ()


class _HealthBody(BaseModel):
    status: str
    metrics: dict[str, float]
    issues: list[str]


def parse_request_stats(text: str, window_records: int) -> RequestStats:
    """Compute request figures from a Prometheus page of raw samples. Raises ValueError on a bad page."""
    families = {family.name: family for family in text_string_to_metric_families(text)}
    if "http_requests" not in families and "process_uptime_seconds" not in families:
        raise ValueError("not kamkmserve's metrics page: neither process_uptime_seconds nor http_requests_total")
    uptime = None
    if "process_uptime_seconds" in families and families["process_uptime_seconds"].samples:
        uptime = float(families["process_uptime_seconds"].samples[0].value)
    requests = [s for s in families["http_requests"].samples] if "http_requests" in families else []
    if not requests:
        return RequestStats(
            available=False, uptime_s=uptime, no_request_series=True,
            reason="no request records on the metrics page (kamkmserve's request metrics are not emitted)",
        )
    recent = requests[-window_records:]
    routes: dict[tuple[str, str], list[int]] = {}
    errors_5xx = errors_4xx = 0
    for sample in recent:
        status = _status(sample.labels.get("status"))
        key = (sample.labels.get("method", "?"), sample.labels.get("path", "?"))
        counts = routes.setdefault(key, [0, 0])
        counts[0] += 1
        if status >= 500:
            errors_5xx += 1
            counts[1] += 1
        elif status >= 400:
            errors_4xx += 1
    timed = [(s.labels.get("method", "?"), s.labels.get("path", "?"), float(s.value))
             for s in (families["http_request_duration"].samples if "http_request_duration" in families else [])]
    timed = [t for t in timed[-window_records:] if math.isfinite(t[2])]
    durations = [d for _, _, d in timed]
    per_route: dict[tuple[str, str], list[float]] = {}
    for method, path, duration in timed:
        per_route.setdefault((method, path), []).append(duration)
    for key in per_route:
        routes.setdefault(key, [0, 0])  # timed but no request record in the window: still a route
    return RequestStats(
        available=True,
        records=len(recent),
        errors_5xx=errors_5xx,
        errors_4xx=errors_4xx,
        error_rate_5xx_pct=round(100.0 * errors_5xx / len(recent), 3),
        avg_ms=round(sum(durations) / len(durations), 1) if durations else None,
        p95_ms=percentile(durations, 95) if durations else None,
        latency_samples=len(durations),
        routes=tuple(_route(m, p, c, per_route.get((m, p), [])) for (m, p), c in routes.items()),
        uptime_s=uptime,
    )


def _route(method: str, path: str, counts: list[int], durations: list[float]) -> RouteStats:
    return RouteStats(method=method, path=path, total=counts[0], errors_5xx=counts[1],
                      avg_ms=round(sum(durations) / len(durations), 1) if durations else None,
                      p95_ms=percentile(durations, 95) if durations else None, latency_samples=len(durations))


def _status(raw: str | None) -> int:
    try:
        return int(raw or "0")
    except ValueError:
        return 0


def page_problem(fetched: Fetched) -> str | None:
    """Why a fetched metrics page cannot be read (an error, or an HTML page where metrics should be); None: fine."""
    if not fetched.ok:
        return f"{fetched.url}: {fetched.error}"
    if fetched.content_type == "text/html" or fetched.text.lstrip().startswith("<"):
        return f"{fetched.url}: an HTML page instead of metrics"
    return None


def app_client(metrics: Metrics) -> AppHttp | None:
    """The client the metrics read the app with (its budget, its transport); None when they do not come over HTTP."""
    return metrics.http if isinstance(metrics, AppMetrics) else None


def app_reads(metrics: Metrics) -> AppReadTally | None:
    """This process's tally of reads of the app so far; None when the metrics do not come over ``AppHttp``."""
    http = app_client(metrics)
    return http.reads() if http is not None else None


class AppMetrics:
    """Metrics read from kamkmserve's endpoints (or the simulator's identical ones)."""

    def __init__(self, http: AppHttp) -> None:
        self.http = http

    async def request_stats(self, window_records: int) -> RequestStats:
        fetched = await self.http.get(METRICS_PATH)
        if problem := page_problem(fetched):
            return RequestStats(available=False, reason=problem, rate_limited=fetched.rate_limited)
        try:
            return parse_request_stats(tail_samples(fetched.text, REQUEST_SERIES, window_records), window_records)
        except ValueError as exc:
            return RequestStats(available=False, reason=f"{fetched.url}: unparseable metrics page ({exc})")

    async def db_operations(self, window_samples: int) -> DbOperationStats:
        from remediation.providers.dbops import DbOperationStats, parse_db_operations

        fetched = await self.http.get(METRICS_PATH)
        if problem := page_problem(fetched):
            return DbOperationStats(available=False, reason=problem)
        try:
            page = tail_samples(fetched.text, ("process_uptime_seconds", "db_operation_duration"), window_samples)
            return parse_db_operations(page, window_samples)
        except ValueError as exc:
            return DbOperationStats(available=False, reason=f"{fetched.url}: unparseable metrics page ({exc})")

    async def upload_counts(self) -> UploadCounts:
        from remediation.providers.uploadstats import UploadCounts, parse_upload_counts

        fetched = await self.http.get(METRICS_PATH)
        if problem := page_problem(fetched):
            return UploadCounts(available=False, reason=problem)
        try:
            return parse_upload_counts(fetched.text)
        except ValueError as exc:
            return UploadCounts(available=False, reason=f"{fetched.url}: unparseable metrics page ({exc})")

    async def health(self) -> HealthReading:
        fetched = await self.http.get(HEALTH_PATH, params={"format": "health"})
        if not fetched.ok:
            return HealthReading(available=False, reason=f"{fetched.url}: {fetched.error}")
        try:
            body = _HealthBody.model_validate(json.loads(fetched.text))
        except (ValueError, ValidationError) as exc:
            return HealthReading(available=False, reason=f"{fetched.url}: not the health JSON ({str(exc)[:120]})")
        return HealthReading(
            available=True,
            status=body.status,
            memory_pct=body.metrics.get("memoryUsage"),
            error_rate_pct=body.metrics.get("errorRate"),
            avg_response_ms=body.metrics.get("avgResponseTime"),
            issues=tuple(body.issues),
        )
