"""The load-spike scenario and the simulated platform's capacity control plane (``/_sim/capacity``).

Latency is read the way the runbook reads it: the app's raw metrics page, its logs and its health JSON.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from kamkmserve_sim import SimServer
from kamkmserve_sim.capacity import LoadModel, mean_wait_ms

from remediation.providers.dbops import parse_db_operations
from remediation.providers.metrics import RequestStats, parse_request_stats
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
    return httpx.request(method, f"{server.url}/_sim/capacity", timeout=5, **kwargs)


def test_the_surge_slows_every_path_logs_slow_requests_and_leaves_the_database_alone(start_sim: Start) -> None:
    server = start_sim(scenario="load-spike", rps=60, onset_s=0.2)
    before = stats(server)
    assert before.p95_ms is not None and before.p95_ms < 500  # the prefilled minute before the surge
    # Once the metrics window holds only surge traffic: p95 in seconds, the average over the app's warning.
    reading = stats_when(server, lambda r: (r.p95_ms or 0) > 1500 and (r.avg_ms or 0) > 1000,
                         "p95 well above 500 ms and avg above 1000 ms")
    assert len([r for r in reading.hottest_routes(3) if (r.p95_ms or 0) > 500]) >= 3  # not one path: all of them
    logs = httpx.get(f"{server.url}/_sim/logs", params={"limit": "3000"}, timeout=5).text.splitlines()
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
    assert "Slow request detected" not in httpx.get(f"{server.url}/_sim/logs", timeout=5).text


def test_capacity_endpoint_reads_and_sets_replicas_idempotently(start_sim: Start) -> None:
    server = start_sim(scenario="healthy", rps=0)
    assert capacity(server).json() == {"service": "kamkmserve", "replicas": 2}
    assert capacity(server, params={"service": "kamkmserve"}).json()["replicas"] == 2
    assert capacity(server, "POST", json={"service": "kamkmserve", "replicas": 5}).json()["changed"] is True
    again = capacity(server, "POST", json={"replicas": 5}).json()
    assert again == {"service": "kamkmserve", "replicas": 5, "changed": False}
    assert capacity(server).json()["replicas"] == 5
    httpx.post(f"{server.url}/_sim/scenario", json={"name": "healthy"}, timeout=5)
    assert capacity(server).json()["replicas"] == 2  # a new world starts with two replicas


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"replicas": 0}, "between 1 and 100"), ({"replicas": 101}, "between 1 and 100"),
        ({"replicas": -3}, "between 1 and 100"), ({"replicas": "3"}, "integer"), ({"replicas": 2.5}, "integer"),
        ({"replicas": True}, "integer"), ({"replicas": None}, "integer"), ({}, "integer"),
        ({"service": 7, "replicas": 3}, "service"), ([3], "JSON object"), ("not json", "not JSON"),
        ("", "body is required"),
    ],
)  # fmt: skip
def test_bad_capacity_requests_are_a_clear_400_and_change_nothing(start_sim: Start, body: Any, message: str) -> None:
    server = start_sim(scenario="healthy", rps=0)
    if isinstance(body, str):
        answer = capacity(server, "POST", content=body, headers={"content-type": "application/json"})
    else:
        answer = capacity(server, "POST", json=body)
    assert answer.status_code == 400
    assert message in answer.json()["error"]
    assert capacity(server).json()["replicas"] == 2


def test_unknown_service_is_a_404(start_sim: Start) -> None:
    server = start_sim(scenario="healthy", rps=0)
    assert capacity(server, params={"service": "other"}).status_code == 404
    answer = capacity(server, "POST", json={"service": "other", "replicas": 3})
    assert answer.status_code == 404 and "other" in answer.json()["error"]


def test_wait_curve_is_continuous_and_grows_with_utilisation() -> None:
    points = [i / 100 for i in range(0, 301)]
    waits = [mean_wait_ms(rho) for rho in points]
    assert waits == sorted(waits)
    assert mean_wait_ms(0.4) == 0.0 and mean_wait_ms(0.5) == 0.0
    assert abs(mean_wait_ms(0.99999) - mean_wait_ms(1.0)) < 0.1
    assert mean_wait_ms(0.8) < 50 < 1000 < mean_wait_ms(1.6)


def test_load_model_is_deterministic_under_a_seed_and_maintenance_removes_its_share() -> None:
    def waits(seed: int) -> list[int]:
        model = LoadModel(random.Random(seed))
        model.traffic_multiplier = 4.0
        return [model.wait_ms(lambda path: False) for _ in range(50)]

    assert waits(3) == waits(3) != waits(4)
    model = LoadModel(random.Random(1))
    model.traffic_multiplier = 4.0
    everything = model.utilisation(lambda path: False)
    assert everything == pytest.approx(1.6)
    shed = model.utilisation(lambda path: path.startswith("/api/cart"))
    assert everything * 0.7 < shed < everything
    model.scale(4)
    assert model.utilisation(lambda path: False) == pytest.approx(0.8)
    with pytest.raises(ValueError):
        model.scale(0)
