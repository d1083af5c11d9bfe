"""The /api rate limit: 100 per minute per client IP, fixed reset, /monitoring and /_sim exempt."""

from __future__ import annotations

from collections.abc import Callable

from kamkmserve_sim import SimServer
from kamkmserve_sim.ratelimit import ApiRateLimiter, client_identity

from tests.sim.simkit import fetch, poll

NOW = 1_795_706_847_256


def test_hundred_requests_pass_and_the_101st_is_refused_with_retry_after() -> None:
    limiter = ApiRateLimiter(100)
    decisions = [limiter.hit("ip", NOW + i) for i in range(101)]
    assert all(d.allowed for d in decisions[:100])
    assert [d.remaining for d in decisions[:3]] == [99, 98, 97]
    refused = decisions[100]
    assert (refused.allowed, refused.remaining, refused.retry_after_s) == (False, 0, 60)


def test_reset_is_the_window_start_plus_a_minute_floored_and_does_not_move() -> None:
    limiter = ApiRateLimiter(100)
    first = limiter.hit("ip", NOW)
    later = limiter.hit("ip", NOW + 18_000)
    assert first.reset_s == later.reset_s == (NOW + 60_000) // 1000 == 1795706907  # fixture 1a and 1f


def test_a_new_window_starts_after_a_minute() -> None:
    limiter = ApiRateLimiter(2)
    limiter.hit("ip", NOW)
    limiter.hit("ip", NOW)
    assert not limiter.hit("ip", NOW + 59_999).allowed
    again = limiter.hit("ip", NOW + 60_000)
    assert again.allowed and again.remaining == 1


def test_client_identity_is_first_forwarded_entry_then_real_ip_then_unknown() -> None:
    assert client_identity(" 203.0.113.7 , 10.0.0.1", "192.0.2.1") == "203.0.113.7"
    assert client_identity(None, "192.0.2.1") == "192.0.2.1"
    assert client_identity("", None) == "unknown"


def test_101st_api_request_over_http_gets_429_with_retry_after(start_sim: Callable[..., SimServer]) -> None:
    server = start_sim(rps=0)
    remaining = [fetch(server.url, "/api/monitoring/metrics").header("ratelimit-remaining") for _ in range(100)]
    assert remaining[0] == "99" and remaining[-1] == "0"
    refused = fetch(server.url, "/api/monitoring/metrics")
    assert refused.status == 429 and refused.body == "Too Many Requests"
    assert refused.header("ratelimit-remaining") == "0"
    assert 1 <= int(refused.header("retry-after") or "0") <= 60
    assert fetch(server.url, "/api/health").status == 429  # every /api path shares the budget


def test_monitoring_and_control_plane_are_not_limited(start_sim: Callable[..., SimServer]) -> None:
    server = start_sim(rps=0, rate_limit=3)
    for _ in range(3):
        fetch(server.url, "/api/cart")
    assert fetch(server.url, "/api/cart").status == 429
    for _ in range(10):
        health = fetch(server.url, "/monitoring/metrics?format=health")
        assert health.status == 200 and health.header("ratelimit-remaining") is None
        assert fetch(server.url, "/monitoring/health").status == 200
        assert fetch(server.url, "/_sim/state").status == 200


def test_each_forwarded_client_has_its_own_budget(start_sim: Callable[..., SimServer]) -> None:
    server = start_sim(rps=0, rate_limit=2)
    for _ in range(2):
        fetch(server.url, "/api/cart")
    assert fetch(server.url, "/api/cart").status == 429
    other = fetch(server.url, "/api/cart", headers={"x-forwarded-for": "198.51.100.9, 10.0.0.2"})
    assert other.status == 401 and other.header("ratelimit-remaining") == "1"
    by_real_ip = fetch(server.url, "/api/cart", headers={"x-real-ip": "192.0.2.44"})
    assert by_real_ip.status == 429  # Next fills X-Forwarded-For with the peer, which wins over X-Real-IP


def test_simulated_users_never_consume_our_budget(start_sim: Callable[..., SimServer]) -> None:
    server = start_sim(rps=300)
    poll(lambda: server.state is not None and server.state.stats.app_served > 100, what="traffic")
    assert fetch(server.url, "/api/cart").header("ratelimit-remaining") == "99"
