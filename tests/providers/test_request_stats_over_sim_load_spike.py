"""The runbook's metrics readers (``parse_request_stats``, ``parse_db_operations``) over the simulator's load-spike
scenario: what the latency runbook will see on the app's raw metrics page while the surge lasts, after scaling and
once it ends. Adapter tests: the simulator's own behaviour is proven in tests/sim without our parsers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
from kamkmserve_sim import SimServer

from remediation.providers.dbops import parse_db_operations
from remediation.providers.metrics import RequestStats, parse_request_stats
from tests.helpers import local_http
from tests.sim.simkit import fetch, poll

Start = Callable[..., SimServer]
PROBE_IP = {"x-forwarded-for": "10.7.7.7"}  # our own reads: kept off the runbook's rate-limit identity


def stats(server: SimServer, window: int = 100) -> RequestStats:
    return parse_request_stats(fetch(server.url, "/api/monitoring/metrics", headers=PROBE_IP).body, window)


def stats_when(server: SimServer, ok: Callable[[RequestStats], bool], what: str,
               timeout_s: float = 10.0) -> RequestStats:
    def check() -> RequestStats | None:
        reading = stats(server)
        return reading if reading.p95_ms is not None and ok(reading) else None
    return poll(check, timeout_s=timeout_s, interval_s=0.2, what=what)


def p95_when(server: SimServer, ok: Callable[[float], bool], what: str, timeout_s: float = 10.0) -> RequestStats:
    return stats_when(server, lambda r: ok(r.p95_ms or 0.0), what, timeout_s)


def health(server: SimServer) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(fetch(server.url, "/monitoring/metrics?format=health").body)
    return body


def capacity(server: SimServer, method: str = "GET", **kwargs: Any) -> httpx.Response:
    return local_http.request(method, f"{server.url}/_sim/capacity", timeout=5, **kwargs)


def test_the_surge_slows_every_path_logs_slow_requests_and_leaves_the_database_alone(start_sim: Start) -> None:
    server = start_sim(scenario="load-spike", rps=60, onset_s=0.2)
    before = stats(server)
    assert before.p95_ms is not None and before.p95_ms < 500  # the prefilled minute before the surge
    # Once the metrics window holds only surge traffic: p95 in seconds, the average over the app's warning.
    reading = stats_when(server, lambda r: (r.p95_ms or 0) > 1500 and (r.avg_ms or 0) > 1000,
                         "p95 well above 500 ms and avg above 1000 ms")
    assert len([r for r in reading.hottest_routes(3) if (r.p95_ms or 0) > 500]) >= 3  # not one path: all of them
    logs = local_http.get(f"{server.url}/_sim/logs", params={"limit": "3000"}, timeout=5).text.splitlines()
    slow = [json.loads(line) for line in logs if '"Slow request detected: ' in line]
    assert slow and all(entry["level"] == "warn" and entry["context"]["duration"] > 1000 for entry in slow)
    assert slow[-1]["context"]["slowRequest"] is True
    # The app's own health rule averages its whole buffer (500 records), so it follows a little later.
    reported = poll(lambda: (body := health(server))["metrics"]["avgResponseTime"] > 1000 and body,
                    timeout_s=10, interval_s=0.2, what="the health JSON's average over 1000 ms")
    assert {"Elevated response time", "High response time"} & set(reported["issues"])
    db = parse_db_operations(fetch(server.url, "/api/monitoring/metrics", headers=PROBE_IP).body)
    assert db.available and max(o.p95_ms for o in db.operations) < 500  # pure load: queries are as fast as ever


def test_scaling_to_four_replicas_brings_p95_back_within_seconds(start_sim: Start) -> None:
    server = start_sim(scenario="load-spike", rps=60, onset_s=0.2)
    p95_when(server, lambda p95: p95 > 1000, "the surge")
    answer = capacity(server, "POST", json={"replicas": 4})
    assert answer.status_code == 200
    assert answer.json() == {"service": "kamkmserve", "replicas": 4, "changed": True}
    p95_when(server, lambda p95: p95 < 500, "p95 under 500 ms at 4 replicas", timeout_s=8.0)


def test_the_surge_ends_after_spike_s(start_sim: Start) -> None:
    server = start_sim(scenario="load-spike", rps=60, onset_s=0.2, spike_s=1.0)
    p95_when(server, lambda p95: p95 > 1000, "the surge")
    p95_when(server, lambda p95: p95 < 500, "the end of the surge", timeout_s=8.0)
    assert capacity(server).json()["replicas"] == 2  # nobody scaled: the load went away by itself


def test_as_is_mode_shows_no_latency_at_all_under_the_surge(start_sim: Start) -> None:
    server = start_sim(scenario="load-spike", rps=60, onset_s=0.1, request_metrics=False)
    poll(lambda: server.state is not None and server.state.load.traffic_multiplier > 1, what="the surge")
    page = fetch(server.url, "/api/monitoring/metrics", headers=PROBE_IP).body
    assert "http_request_duration" not in page
    assert not stats(server).available
    assert "Slow request detected" not in local_http.get(f"{server.url}/_sim/logs", timeout=5).text
