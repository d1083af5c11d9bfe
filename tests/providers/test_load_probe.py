"""The load probe: client-side p95 and error share of N GETs, within the app's request budget."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import httpx
import pytest
from kamkmserve_sim import SimConfig, SimServer

from remediation.providers.budget import RequestBudget
from remediation.providers.http import AppHttp
from remediation.providers.probe import DEFAULT_PATHS, LoadProbe

Handler = Callable[[httpx.Request], httpx.Response]


def probe(handler: Handler, *, budget: int = 100, timer_ms: list[float] | None = None) -> LoadProbe:
    http = AppHttp("http://app.test", RequestBudget(budget), transport=httpx.MockTransport(handler))
    if timer_ms is None:
        return LoadProbe(http, concurrency=1)
    ticks = itertools.chain.from_iterable((0.0, ms / 1000) for ms in timer_ms)
    return LoadProbe(http, concurrency=1, timer=lambda: next(ticks))


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, text="<html></html>")


async def test_fast_healthy_answers_pass_and_only_safe_paths_are_read_with_get() -> None:
    seen: list[tuple[str, str]] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path))
        return ok(request)

    verification = await probe(record, timer_ms=[40.0] * 10).verify(requests=10, p95_ms=500, error_pct=1.0)
    assert verification.healthy is True
    assert verification.detail.startswith("p95 40 ms, 0% errors, 10/10 answered")
    assert len(verification.samples) == 10 and all(s.healthy for s in verification.samples)
    assert {method for method, _ in seen} == {"GET"} and {path for _, path in seen} == set(DEFAULT_PATHS)


async def test_a_slow_tail_fails_on_p95() -> None:
    durations = [30.0] * 18 + [900.0, 1200.0]
    verification = await probe(ok, timer_ms=durations).verify(requests=20, p95_ms=500, error_pct=1.0)
    assert verification.healthy is False and "p95 900 ms" in verification.detail


async def test_server_errors_count_against_the_error_share() -> None:
    answers = itertools.cycle([200] * 9 + [503])
    verification = await probe(lambda r: httpx.Response(next(answers)), timer_ms=[20.0] * 20).verify(
        requests=20, p95_ms=500, error_pct=1.0)
    assert verification.healthy is False and "10% errors" in verification.detail and "HTTP 503" in verification.detail


async def test_a_429_is_rate_limiting_not_an_app_error_and_too_many_make_it_unknown() -> None:
    def limited(request: httpx.Request) -> httpx.Response:
        return httpx.Response(429, text="Too Many Requests", headers={"retry-after": "30"})

    verification = await probe(limited).verify(requests=6, p95_ms=500, error_pct=1.0)
    assert verification.healthy is False
    assert verification.detail.startswith("unknown: only 0 of 6 requests answered (6 rate limited or not sent, "
                                          "0 failed")


async def test_a_spent_budget_sends_nothing_more_and_is_unknown() -> None:
    sent: list[str] = []

    def count(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        return ok(request)

    verification = await probe(count, budget=3).verify(requests=10, p95_ms=500, error_pct=1.0)
    assert len(sent) == 3
    assert verification.healthy is False and "only 3 of 10" in verification.detail


async def test_an_unreachable_app_is_not_healthy() -> None:
    http = AppHttp("http://127.0.0.1:9", RequestBudget(100), timeout_s=2)
    verification = await LoadProbe(http).verify(requests=4, p95_ms=500, error_pct=1.0)
    assert verification.healthy is False and "unreachable" in verification.detail


@pytest.mark.parametrize("paths", [()])
def test_a_probe_needs_a_path(paths: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="at least one path"):
        LoadProbe(AppHttp("http://app.test", RequestBudget(10)), paths)


@pytest.mark.wallclock  # real HTTP timed by the wall clock: on a busy machine p95 reached 933 ms; run alone
async def test_against_the_simulator_the_public_pages_pass_the_apps_load_test_gate() -> None:
    with SimServer(SimConfig(scenario="healthy", rps=0, seed=7)).start() as sim:
        http = AppHttp(sim.url, RequestBudget(100))
        verification = await LoadProbe(http).verify(requests=10, p95_ms=500, error_pct=1.0)
    assert verification.healthy is True, verification.detail
