"""The high-latency runbook's pure decisions: the verdict, the scale-up size, the path to shed, the advice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from remediation.models import FindingStatus, ScaleDown
from remediation.providers.dbops import DbOperation, DbOperationStats
from remediation.providers.metrics import RequestStats, RouteStats
from remediation.providers.platform import Release
from tasks.high_latency.identify import LatencyThresholds, hottest_prefixes, latency_finding, scale_up_plan
from tasks.high_latency.investigate import recommend
from tasks.high_latency.recover import judge

LIMITS = LatencyThresholds(p95_ms=500, avg_warning_ms=1000, avg_critical_ms=2000, min_records=20)
NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


def route(path: str, p95: float, samples: int = 10, method: str = "GET") -> RouteStats:
    return RouteStats(method=method, path=path, total=samples, errors_5xx=0, avg_ms=p95 / 2, p95_ms=p95,
                      latency_samples=samples)


def stats(p95: float = 300, avg: float = 120, samples: int = 100, routes: tuple[RouteStats, ...] = (),
          errors_pct: float = 0.0) -> RequestStats:
    return RequestStats(available=True, records=samples, error_rate_5xx_pct=errors_pct, avg_ms=avg, p95_ms=p95,
                        latency_samples=samples, routes=routes)


def db(*ops: tuple[str, str, float]) -> DbOperationStats:
    return DbOperationStats(available=True, samples=50, operations=tuple(
        DbOperation(table=t, operation=o, count=10, failures=0, avg_ms=p / 2, p95_ms=p, max_ms=p) for o, t, p in ops))


NO_DB = DbOperationStats(available=False, reason="no db_operation_duration samples")
OLD_RELEASE = [Release(id="d1", version="v1.4.2", created_at=NOW - timedelta(hours=3),
                       promoted_at=NOW - timedelta(hours=3), state="current")]


@pytest.mark.parametrize(
    ("p95", "avg", "status", "level"),
    [(300, 120, FindingStatus.OK, "normal"), (800, 300, FindingStatus.BREACH, "normal"),
     (450, 1200, FindingStatus.BREACH, "warning"), (4000, 2500, FindingStatus.BREACH, "critical")],
)  # fmt: skip
def test_breach_is_p95_over_the_threshold_or_the_average_over_the_warning(
    p95: float, avg: float, status: FindingStatus, level: str
) -> None:
    finding = latency_finding(stats(p95, avg), LIMITS)
    assert finding.status is status and finding.evidence["avg_level"] == level


def test_no_or_too_few_samples_is_unknown_never_ok() -> None:
    dead = latency_finding(RequestStats(available=False, reason="no request records"), LIMITS)
    assert dead.status is FindingStatus.UNKNOWN and dead.observed is None and "no request records" in dead.detail
    few = latency_finding(stats(samples=5), LIMITS)
    assert few.status is FindingStatus.UNKNOWN and "too few" in few.detail


@pytest.mark.parametrize(
    ("current", "factor", "cap", "target"),
    [(2, 2.0, 20, 4), (2, 2.0, 3, 3), (3, 1.5, 20, 5), (0, 2.0, 20, 2), (4, 2.0, 4, None), (2, 1.0, 20, None)],
)  # fmt: skip
def test_scale_up_is_current_times_factor_rounded_up_and_capped(
    current: int, factor: float, cap: int, target: int | None
) -> None:
    plan = scale_up_plan("kamkmserve", current, factor, cap, ttl_s=600)
    assert (plan.to_replicas if plan else None) == target
    if plan is not None:
        assert plan.from_replicas == current and plan.ttl_s == 600
        undo = plan.undo()
        assert isinstance(undo, ScaleDown) and undo.to_replicas == max(current, 1)


def test_shedding_picks_the_hottest_path_but_never_the_site_or_our_monitoring() -> None:
    routes = (route("/", 9000), route("/api/monitoring/metrics", 8000), route("/monitoring/health", 7000),
              route("/rare", 6000, samples=1), route("/api/contact", 3000), route("/api/cart", 2000),
              route("/pricing", 100))
    assert hottest_prefixes(stats(routes=routes), 500) == ("/api/contact",)
    assert hottest_prefixes(stats(routes=routes), 500, limit=2) == ("/api/contact", "/api/cart")
    assert hottest_prefixes(stats(routes=(route("/pricing", 100),)), 500) == ()


def test_a_slow_select_points_at_an_index_and_the_database_runbook() -> None:
    advice = recommend(stats(2000), db(("SELECT", "kamkmserve_order", 1800), ("INSERT", "kamkmserve_cart", 40)),
                       OLD_RELEASE, NOW, 3600, 500)
    assert advice.kind == "index"
    assert "kamkmserve_order" in advice.summary and "database-errors runbook" in advice.summary


def test_a_slow_write_points_at_the_database_runbook_without_an_index() -> None:
    advice = recommend(stats(2000), db(("UPDATE", "kamkmserve_order", 1500)), OLD_RELEASE, NOW, 3600, 500)
    assert advice.kind == "database" and "lock contention" in advice.summary


def test_a_release_promoted_just_before_is_named() -> None:
    fresh = [Release(id="d2", version="v1.5.0", created_at=NOW - timedelta(minutes=5),
                     promoted_at=NOW - timedelta(minutes=5), state="current"), *OLD_RELEASE]
    advice = recommend(stats(2000), db(("SELECT", "kamkmserve_cart", 40)), fresh, NOW, 3600, 500)
    assert advice.kind == "release" and "v1.5.0" in advice.summary and "300s" in advice.summary


def test_one_slow_path_among_many_fast_ones_is_a_hot_path() -> None:
    routes = (route("/api/contact", 4000), *(route(f"/p{i}", 200) for i in range(7)))
    advice = recommend(stats(600, routes=routes), NO_DB, OLD_RELEASE, NOW, 3600, 500)
    assert advice.kind == "hot_path" and "/api/contact" in advice.summary and "timings unknown" in advice.summary


def test_every_path_slow_with_a_normal_database_and_no_release_is_pure_load() -> None:
    routes = tuple(route(f"/p{i}", 3000 + i) for i in range(8))
    advice = recommend(stats(3000, routes=routes), db(("SELECT", "kamkmserve_cart", 40)), OLD_RELEASE, NOW, 3600, 500)
    assert advice.kind == "capacity" and "8 of 8 routes" in advice.summary and "plan capacity" in advice.summary


@pytest.mark.parametrize(
    ("reading", "healthy"),
    [(stats(300, 120), True), (stats(600, 120), False), (stats(300, 1200), False),
     (stats(300, 120, errors_pct=2.0), False), (stats(300, 120, samples=5), None),
     (RequestStats(available=False, reason="429"), None)],
)  # fmt: skip
def test_a_watch_reading_needs_p95_average_and_5xx_all_within_limits(reading: RequestStats,
                                                                     healthy: bool | None) -> None:
    assert judge(reading, LIMITS, error_pct=1.0)[0] is healthy
