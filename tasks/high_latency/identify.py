"""Identify and contain for the high-latency runbook: latency findings and the scale-up / load-shedding plans.

kamkmserve exports raw ``http_request_duration`` samples (ms), no quantiles: p95 and the average are computed
here from the most recent N samples. Against the app as it is the series is dead, so every latency figure is
``unknown`` (the health JSON's ``avgResponseTime`` then reads 0, which means "no records", not "fast").
"""

from __future__ import annotations

import math
from datetime import timedelta

from pydantic import BaseModel, ConfigDict

from remediation.models import EnableMaintenance, Finding, FindingStatus, ScaleUp
from remediation.providers.metrics import RequestStats
from remediation.runbooks.containment import NEVER_CONTAIN, maintenance_plan
from remediation.runtime import Providers
from tasks import step

# The app's warn line for a request over 1000 ms (docs/reference/kamkmserve.md §3.3).
SLOW_REQUEST = "Slow request detected: "


class LatencyThresholds(BaseModel):
    """A breach is p95 above ``p95_ms`` or the average above ``avg_warning_ms``."""

    model_config = ConfigDict(frozen=True)

    p95_ms: float
    avg_warning_ms: float
    avg_critical_ms: float
    min_records: int = 20

    def describe(self) -> str:
        return f"p95 <= {self.p95_ms:g} ms and avg <= {self.avg_warning_ms:g} ms"


def latency_finding(stats: RequestStats, limits: LatencyThresholds) -> Finding:
    """p95 and average of the most recent duration samples against the thresholds; hottest paths in detail."""
    evidence = {"latency_samples": stats.latency_samples, "avg_ms": stats.avg_ms, "p95_ms": stats.p95_ms}
    if not stats.available or stats.p95_ms is None or stats.avg_ms is None:
        reason = stats.reason if not stats.available else "no http_request_duration samples on the metrics page"
        return Finding(check="latency_p95", status=FindingStatus.UNKNOWN, threshold=limits.p95_ms, unit="ms",
                       detail=reason or "no latency samples", evidence=evidence)
    if stats.latency_samples < limits.min_records:
        return Finding(check="latency_p95", status=FindingStatus.UNKNOWN, observed=stats.p95_ms,
                       threshold=limits.p95_ms, unit="ms",
                       detail=f"only {stats.latency_samples} duration samples (< {limits.min_records}): too few",
                       evidence=evidence)
    over_p95 = stats.p95_ms > limits.p95_ms
    over_avg = stats.avg_ms > limits.avg_warning_ms
    level = ("critical" if stats.avg_ms > limits.avg_critical_ms else "warning") if over_avg else "normal"
    hot = ", ".join(f"{r.method} {r.path} p95 {r.p95_ms:g} ms" for r in stats.hottest_routes(3)[:3])
    return Finding(
        check="latency_p95", status=FindingStatus.BREACH if over_p95 or over_avg else FindingStatus.OK,
        observed=stats.p95_ms, threshold=limits.p95_ms, unit="ms",
        detail=(f"p95 {stats.p95_ms:g} ms, avg {stats.avg_ms:g} ms ({level}; warning > "
                f"{limits.avg_warning_ms:g}, critical > {limits.avg_critical_ms:g}) over the last "
                f"{stats.latency_samples} requests" + (f"; hottest: {hot}" if hot else "")),
        evidence={**evidence, "avg_level": level},
    )


@step(name="identify: latency p95 and average")
async def sample_latency(providers: Providers, limits: LatencyThresholds, window_records: int, samples: int,
                         interval_s: float) -> tuple[list[Finding], RequestStats]:
    """``samples`` readings ``interval_s`` apart; a breach is confirmed only if every reading breaches."""
    readings: list[Finding] = []
    stats = RequestStats(available=False, reason="not sampled")
    for i in range(samples):
        if i:
            await providers.clock.sleep(interval_s)
        stats = await providers.metrics.request_stats(window_records)
        readings.append(latency_finding(stats, limits))
    statuses = {f.status for f in readings}
    last = readings[-1]
    if statuses == {FindingStatus.BREACH}:
        verdict = last
    elif FindingStatus.UNKNOWN in statuses:
        verdict = next(f for f in readings if f.status is FindingStatus.UNKNOWN)
    else:
        verdict = last.model_copy(update={
            "status": FindingStatus.OK, "detail": f"{last.detail}; not every one of {samples} readings breached"})
    series = [f.observed for f in readings]
    return [verdict.model_copy(update={"evidence": {**verdict.evidence, "readings": series}})], stats


@step(name="identify: slow request log lines")
async def slow_request_finding(providers: Providers, lookback_s: float, metrics_live: bool) -> Finding:
    """Counts the app's ``Slow request detected`` warn lines. The app only writes them from its (dead today)
    request metrics, so none while those are dead is unknown, not a sign of health."""
    since = providers.clock.now() - timedelta(seconds=lookback_s)
    try:
        lines = await providers.logs.lines(since=since, limit=2000)
    except Exception as exc:
        return Finding(check="slow_request_logs", status=FindingStatus.UNKNOWN, unit="lines",
                       detail=f"logs unreadable: {exc}")
    slow = [line for line in lines if line.message.startswith(SLOW_REQUEST)]
    by_route: dict[str, int] = {}
    for line in slow:
        route = line.message.removeprefix(SLOW_REQUEST)
        by_route[route] = by_route.get(route, 0) + 1
    top = "; ".join(f"{n}x {route}" for route, n in sorted(by_route.items(), key=lambda kv: (-kv[1], kv[0]))[:3])
    if not slow and not metrics_live:
        return Finding(check="slow_request_logs", status=FindingStatus.UNKNOWN, observed=0, threshold=0,
                       unit="lines", detail="no Slow request lines, but the app's request metrics (which write "
                                            "them) are silent: unknown")
    return Finding(check="slow_request_logs", status=FindingStatus.BREACH if slow else FindingStatus.OK,
                   observed=len(slow), threshold=0, unit="lines",
                   detail=f"{len(slow)} 'Slow request detected' line(s) (> 1000 ms) among the last {len(lines)} "
                          f"log lines" + (f": {top}" if top else ""),
                   evidence={"by_route": by_route})


@step(name="identify: app health JSON latency")
async def health_latency_finding(providers: Providers, limits: LatencyThresholds, metrics_live: bool) -> Finding:
    """``avgResponseTime`` of ``format=health`` (5-min window). It reads 0 when the app records no requests,
    so a 0 while request metrics are silent is unknown."""
    health = await providers.metrics.health()
    if not health.available or health.avg_response_ms is None:
        return Finding(check="app_health_avg_response", status=FindingStatus.UNKNOWN,
                       threshold=limits.avg_warning_ms, unit="ms", detail=health.reason or "no avgResponseTime")
    if not metrics_live and not health.avg_response_ms:
        return Finding(check="app_health_avg_response", status=FindingStatus.UNKNOWN, observed=0,
                       threshold=limits.avg_warning_ms, unit="ms",
                       detail="avgResponseTime 0 with no request records: the app measures nothing")
    return Finding(check="app_health_avg_response",
                   status=FindingStatus.BREACH if health.avg_response_ms > limits.avg_warning_ms else FindingStatus.OK,
                   observed=health.avg_response_ms, threshold=limits.avg_warning_ms, unit="ms",
                   detail=f"app status '{health.status}', issues: {', '.join(health.issues) or 'none'}")


# contain ----------------------------------------------------------------------------------------------------


def scale_up_plan(service: str, current: int, factor: float, max_replicas: int, ttl_s: int) -> ScaleUp | None:
    """``ceil(current * factor)`` replicas, capped by ``max_replicas``; None when that adds none."""
    target = min(math.ceil(max(current, 1) * factor), max_replicas)
    if target <= current:
        return None
    return ScaleUp(service=service, from_replicas=current, to_replicas=target, ttl_s=ttl_s,
                   reason=f"latency breach: {current} -> {target} replicas for {ttl_s}s to absorb the load")


def hottest_prefixes(stats: RequestStats, p95_ms: float, limit: int = 1, min_samples: int = 3) -> tuple[str, ...]:
    """The slowest paths above the threshold that maintenance may cover: never ``/`` (the whole site) nor our
    own monitoring paths."""
    chosen: list[str] = []
    for route in stats.hottest_routes(min_samples):
        if (route.p95_ms or 0.0) <= p95_ms or route.path == "/" or route.path.startswith(NEVER_CONTAIN):
            continue
        if route.path not in chosen:
            chosen.append(route.path)
        if len(chosen) >= limit:
            break
    return tuple(chosen)


def shed_load_plan(service: str, stats: RequestStats, p95_ms: float) -> EnableMaintenance | None:
    return maintenance_plan(service, hottest_prefixes(stats, p95_ms),
                            reason="no capacity lever: shed load by serving the maintenance page on the hottest path")


@step(name="contain: read replicas")
async def read_replicas(providers: Providers, service: str) -> tuple[int | None, str]:
    """The current replica count, or None and why (no capacity lever, or the platform did not answer)."""
    if providers.capacity is None:
        return None, providers.no_lever("capacity")
    try:
        return await providers.capacity.replicas(service), ""
    except Exception as exc:
        return None, f"replica count unreadable: {exc}"
