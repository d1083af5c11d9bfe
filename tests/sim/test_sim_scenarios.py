"""Scenarios and simulated traffic: what a bad release, an outage, rollback and maintenance do to the signals."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from kamkmserve_sim import SCENARIOS, SimServer
from kamkmserve_sim.usermix import TrafficModel
from prometheus_client.parser import text_string_to_metric_families

from tests.sim.simkit import fetch, poll

FAULTY = ("/api/checkout", "/api/cart")


def records(server: SimServer) -> list[tuple[str, str, int]]:
    """(method, path, status) of every ``http_requests_total`` line on the metrics page, oldest first."""
    page = fetch(server.url, "/api/monitoring/metrics", headers={"x-forwarded-for": "10.9.9.9"}).body
    out = []
    for family in text_string_to_metric_families(page):
        if family.name == "http_requests":
            out += [(s.labels["method"], s.labels["path"], int(s.labels["status"])) for s in family.samples]
    return out


def on_faulty_paths(rows: list[tuple[str, str, int]]) -> list[int]:
    return [status for _, path, status in rows if path.startswith(FAULTY)]


def records_once(server: SimServer, ready: Callable[[list[tuple[str, str, int]]], bool]
                 ) -> list[tuple[str, str, int]]:
    """Poll the metrics page until ``ready(records)``; returns those records."""
    def check() -> list[tuple[str, str, int]] | None:
        rows = records(server)
        return rows if ready(rows) else None
    return poll(check, timeout_s=15, what="metrics records")


def control(server: SimServer) -> httpx.Client:
    return httpx.Client(base_url=server.url + "/_sim", timeout=10)


def served(server: SimServer) -> int:
    assert server.state is not None
    return server.state.stats.app_served


def wait_for_traffic(server: SimServer, requests: int) -> None:
    target = served(server) + requests
    poll(lambda: served(server) >= target, what=f"{requests} more simulated requests")


def test_scenario_registry_documents_each_scenario() -> None:
    assert set(SCENARIOS) >= {"healthy", "bad-release", "bad-release-no-recovery", "load-spike"}
    assert all((type(s).__doc__ or "").startswith(f"``{name}``") for name, s in SCENARIOS.items())


def test_same_seed_gives_the_same_request_sequence() -> None:
    first, second = TrafficModel(random.Random(3)), TrafficModel(random.Random(3))
    assert [first.next_request() for _ in range(50)] == [second.next_request() for _ in range(50)]


def test_healthy_traffic_has_no_5xx_and_only_a_little_4xx(start_sim: Callable[..., SimServer]) -> None:
    server = start_sim(scenario="healthy", rps=400)
    wait_for_traffic(server, 400)
    rows = records(server)
    assert len(rows) >= 300 and not [r for r in rows if r[2] >= 500]
    assert sum(1 for r in rows if r[2] >= 400) / len(rows) < 0.06
    assert control(server).get("/errors").json() == []


def test_bad_release_starts_warm_on_the_old_release(start_sim: Callable[..., SimServer]) -> None:
    server = start_sim(scenario="bad-release", rps=0, onset_s=60)
    rows = records(server)
    assert len(rows) == 200 and not [r for r in rows if r[2] >= 500]
    state = control(server).get("/state").json()
    assert state["current_release"]["version"] == "v1.4.2"
    created = datetime.fromisoformat(state["current_release"]["created_at"])
    assert datetime.now(UTC) - created > timedelta(minutes=59)  # backdated: deployed an hour ago


def test_bad_release_raises_5xx_on_its_paths_and_rollback_stops_it(start_sim: Callable[..., SimServer]) -> None:
    server = start_sim(scenario="bad-release", rps=300, onset_s=0.3)
    plane = control(server)
    poll(lambda: plane.get("/state").json()["current_release"]["version"] == "v1.5.0", what="the deploy")
    rows = records_once(server, lambda r: len(on_faulty_paths(r)) >= 100)
    statuses = on_faulty_paths(rows)
    share = sum(1 for s in statuses if s >= 500) / len(statuses)
    assert 0.35 < share < 0.85
    assert not [r for r in rows if r[2] >= 500 and not r[1].startswith(FAULTY)]
    issues = plane.get("/errors").json()
    assert issues and {i["release"] for i in issues} == {"v1.5.0"}
    assert {i["culprit"] for i in issues} <= {"GET /api/cart", "POST /api/cart/items", "POST /api/checkout"}
    assert all(isinstance(i["count"], str) and isinstance(i["userCount"], int) for i in issues)

    rolled = plane.post("/releases/rollback", json={}).json()
    assert rolled["changed"] is True and rolled["current"]["version"] == "v1.4.2"
    errors_at_rollback = plane.get("/state").json()["stats"]["errors_5xx"]
    wait_for_traffic(server, 300)
    assert plane.get("/state").json()["stats"]["errors_5xx"] == errors_at_rollback
    assert not [r for r in records(server) if r[2] >= 500]  # v1.4.2's warm instance never saw an error


def test_no_recovery_scenario_keeps_failing_after_rollback(start_sim: Callable[..., SimServer]) -> None:
    server = start_sim(scenario="bad-release-no-recovery", rps=300, onset_s=0.2)
    plane = control(server)
    poll(lambda: plane.get("/state").json()["current_release"]["version"] == "v1.5.0", what="the deploy")
    assert plane.post("/releases/rollback").json()["current"]["version"] == "v1.4.2"
    errors_at_rollback = plane.get("/state").json()["stats"]["errors_5xx"]
    poll(lambda: plane.get("/state").json()["stats"]["errors_5xx"] >= errors_at_rollback + 20,
         what="errors under the old release")
    titles = {i["title"] for i in plane.get("/errors").json()}
    assert "NeonDbError: Error connecting to database: TypeError: fetch failed" in titles
    rows = records_once(server, lambda r: any(s >= 500 for s in on_faulty_paths(r)))
    assert not [r for r in rows if r[2] >= 500 and not r[1].startswith(FAULTY)]


def test_maintenance_keeps_requests_from_the_app_and_its_metrics(start_sim: Callable[..., SimServer]) -> None:
    server = start_sim(scenario="healthy", rps=400)
    plane = control(server)
    for prefix in FAULTY:
        assert plane.post("/maintenance", json={"prefix": prefix, "enabled": True}).json()["changed"] is True
    records_once(server, lambda r: not on_faulty_paths(r))
    assert plane.get("/state").json()["stats"]["edge_served"] > 0
    page = fetch(server.url, "/api/cart/items", method="POST")
    assert page.status == 503 and page.header("x-sim-edge") == "maintenance"
    assert page.header("ratelimit-remaining") is None  # answered before the app's middleware
    plane.post("/maintenance", json={"prefix": "/api/cart", "enabled": False})
    records_once(server, lambda r: any(p.startswith("/api/cart") for _, p, _ in r))


def test_as_is_mode_prints_no_request_metrics_or_request_log_lines(start_sim: Callable[..., SimServer]) -> None:
    server = start_sim(scenario="bad-release", rps=400, onset_s=0.1, request_metrics=False)
    wait_for_traffic(server, 800)
    page = fetch(server.url, "/api/monitoring/metrics").body
    names = {f.name for f in text_string_to_metric_families(page)}
    assert names <= {"process_uptime_seconds", "process_memory_used_bytes", "process_memory_total_bytes",
                     "http_requests", "upload_accepted", "upload_rejected_validation"}
    assert "http_requests_total{" not in page and "http_request_" not in page and "db_operation" not in page
    health = fetch(server.url, "/monitoring/metrics?format=health").body
    assert '"errorRate":0,"avgResponseTime":0' in health
    logs = control(server).get("/logs", params={"limit": 5000}).text
    for dead in ("Slow request detected", "Database operation", "Metric recorded", "Error occurred"):
        assert dead not in logs
    # The incident is still visible where the real app shows it: stderr and the error tracker.
    assert "TypeError: Cannot read properties of undefined (reading 'price')" in logs
    assert control(server).get("/errors").json()


def test_request_metrics_can_be_switched_on_at_runtime(start_sim: Callable[..., SimServer]) -> None:
    server = start_sim(rps=300, request_metrics=False)
    assert records(server) == []
    state = control(server).post("/faults", json={"request_metrics": True}).json()
    assert state["request_metrics"] is True
    records_once(server, lambda r: len(r) > 20)
