"""Property: p95 (overall and per route) is the nearest-rank percentile of the raw duration samples.

The reference is computed independently, from the definition: the smallest sample such that at least p % of
the samples are at or below it. One property runs on random lists; the other writes a real metrics page
(the simulator's own exposition code, so label escaping and number formatting are the app's) from random
requests and parses it back.
"""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from remediation.providers.metrics import parse_request_stats, percentile

Page = Callable[[list[tuple[str, str, int, int]]], str]

DURATIONS = st.integers(min_value=0, max_value=120_000)
FLOATS = st.floats(min_value=0, max_value=1e7, allow_nan=False, allow_infinity=False)
PATHS = st.sampled_from(["/", "/api/cart", "/api/checkout", '/odd "quoted" path', "/back\\slash", "/é/ü"])
METHODS = st.sampled_from(["GET", "POST", "DELETE"])


@pytest.fixture(scope="session")
def app_page(simulator: ModuleType) -> Page:
    """tests.helpers.app_pages.app_page: it prints with the simulator's exposition code, so it needs the simulator."""
    from tests.helpers.app_pages import app_page

    return app_page


def nearest_rank(values: list[float], pct: float) -> float:
    """Definition-based: the smallest value with at least ``pct`` % of the values at or below it."""
    n = len(values)
    for candidate in sorted(set(values)):
        at_or_below = sum(1 for v in values if v <= candidate)
        if at_or_below * 100 >= Fraction(pct) * n:
            return candidate
    return max(values)


@given(st.lists(FLOATS, min_size=1, max_size=300), st.integers(min_value=1, max_value=100))
def test_percentile_is_the_nearest_rank_at_every_whole_percent(values: list[float], pct: int) -> None:
    assert percentile(values, pct) == nearest_rank(values, pct)


@given(st.lists(FLOATS, min_size=1, max_size=300), st.floats(min_value=0.001, max_value=100))
def test_percentile_is_the_nearest_rank_at_fractional_percents(values: list[float], pct: float) -> None:
    assert percentile(values, pct) == nearest_rank(values, pct)


def test_percentile_fixed_points() -> None:
    assert percentile(list(range(1, 101)), 95) == 95
    assert percentile(list(range(1, 101)), 7) == 7  # 7 / 100 * 100 is 7.000000000000001 in floats
    assert percentile([5.0], 95) == 5.0
    assert percentile([1.0, 2.0], 50) == 1.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(METHODS, PATHS, st.sampled_from([200, 404, 500]), DURATIONS), min_size=1, max_size=250),
       st.integers(min_value=10, max_value=500))
def test_parsed_page_p95_overall_and_per_route_matches_the_definition(
    app_page: Page, requests: list[tuple[str, str, int, int]], window: int
) -> None:
    stats = parse_request_stats(app_page(requests), window)
    recent = requests[-window:]
    durations = [float(d) for *_, d in recent]
    assert stats.available and stats.latency_samples == len(recent)
    assert stats.p95_ms == nearest_rank(durations, 95)
    assert stats.avg_ms == round(sum(durations) / len(durations), 1)
    by_route: dict[tuple[str, str], list[float]] = {}
    for method, path, _, duration in recent:
        by_route.setdefault((method, path), []).append(float(duration))
    routes = {(r.method, r.path): r for r in stats.routes}
    assert set(routes) == set(by_route)
    for key, values in by_route.items():
        route = routes[key]
        assert route.latency_samples == len(values)
        assert route.p95_ms == nearest_rank(values, 95)
        assert route.avg_ms == round(sum(values) / len(values), 1)
    hottest = stats.hottest_routes()
    assert [r.p95_ms or 0.0 for r in hottest] == sorted((r.p95_ms or 0.0 for r in hottest), reverse=True)


def test_hottest_routes_leaves_out_routes_with_too_few_samples(app_page: Page) -> None:
    requests = [("GET", "/rare", 200, 9000)] + [("GET", "/busy", 200, d) for d in range(100, 120)]
    stats = parse_request_stats(app_page(requests), 100)
    assert [r.path for r in stats.hottest_routes()] == ["/rare", "/busy"]
    assert [r.path for r in stats.hottest_routes(min_samples=3)] == ["/busy"]
