"""The simulated load balancer and its instances (``rolling-restart`` scenario): routing, drain, restart, health checks,
per-instance buffers, and what a restart without drain does to requests (the load balancer's 502)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from kamkmserve_sim import SimServer
from kamkmserve_sim.instances_config import FleetConfig
from kamkmserve_sim.instances_lb import alb_page

from tests.helpers import local_http
from tests.sim.simkit import fetch, poll

Start = Callable[..., SimServer]
FAST = FleetConfig(instances=4, restart_s=0.5, health_interval_s=0.2, healthy_threshold=2, unhealthy_threshold=2,
                   deregistration_delay_s=2.0)


def fleet(server: SimServer) -> dict[str, Any]:
    body: dict[str, Any] = local_http.get(f"{server.url}/_sim/instances", timeout=5).json()
    return body


def one(server: SimServer, instance: str) -> dict[str, Any]:
    body: dict[str, Any] = local_http.get(f"{server.url}/_sim/instances/{instance}", timeout=5).json()
    return body


def post(server: SimServer, path: str, **kwargs: Any) -> httpx.Response:
    return local_http.post(f"{server.url}/_sim/instances{path}", timeout=5, **kwargs)


def counters(server: SimServer) -> dict[str, Any]:
    lb: dict[str, Any] = fleet(server)["load_balancer"]
    return lb


def wait_back(server: SimServer, instance: str, generation: int = 1) -> dict[str, Any]:
    return poll(lambda: (s := one(server, instance))["process"] == "running" and s["generation"] >= generation and s,
                timeout_s=10, what=f"{instance} to run again")


def direct_page(server: SimServer, instance: str) -> str:
    return local_http.get(f"{server.url}/_sim/instances/{instance}/direct/api/monitoring/metrics", timeout=5).text


@contextmanager
def clients(server: SimServer, paths: tuple[str, ...] = ("/", "/services", "/blog")) -> Iterator[dict[int, int]]:
    """Real HTTP requests through the load balancer in the background; yields status -> count."""
    seen: dict[int, int] = {}
    stop = threading.Event()

    def loop() -> None:
        with httpx.Client(timeout=5) as client:
            index = 0
            while not stop.is_set():
                status = client.get(f"{server.url}{paths[index % len(paths)]}").status_code
                seen[status] = seen.get(status, 0) + 1
                index += 1

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        yield seen
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)


def test_the_scenario_starts_every_instance_registered_healthy_with_its_own_traffic(start_sim: Start) -> None:
    server = start_sim(scenario="rolling-restart", rps=100.0, fleet=FAST)
    body = fleet(server)
    assert [i["id"] for i in body["instances"]] == ["i-01", "i-02", "i-03", "i-04"]
    assert {(i["lb_state"], i["process"], i["generation"]) for i in body["instances"]} == {("healthy", "running", 0)}
    assert all(i["served"] > 50 for i in body["instances"]), "the prefill is spread round-robin over the instances"
    assert body["load_balancer"]["deregistration_delay_s"] == 2.0
    assert body["load_balancer"]["elb_5xx"] == 0
    assert fetch(server.url, "/monitoring/ready").status == 200  # through the load balancer, to some instance


def test_other_scenarios_keep_their_single_instance_and_have_no_load_balancer(start_sim: Start) -> None:
    server = start_sim(scenario="healthy", rps=50.0)
    answer = local_http.get(f"{server.url}/_sim/instances", timeout=5)
    assert answer.status_code == 409 and "single instance" in answer.json()["error"]
    assert post(server, "/i-01/restart").status_code == 409
    assert server.state is not None and server.state.fleet is None
    assert fetch(server.url, "/").status == 200


def test_unknown_instance_is_404(start_sim: Start) -> None:
    server = start_sim(scenario="rolling-restart", rps=0.0, fleet=FAST)
    assert local_http.get(f"{server.url}/_sim/instances/i-99", timeout=5).status_code == 404
    assert post(server, "/i-99/drain").status_code == 404
    assert local_http.get(f"{server.url}/_sim/instances/i-99/direct/monitoring/ready", timeout=5).status_code == 404


def test_a_restart_without_drain_drops_requests_with_the_load_balancers_502(start_sim: Start) -> None:
    # The restart outlasts the health checks by seconds, so "unhealthy while still starting" is not a race with a
    # busy machine (with 0.5 s it was: the process could be back before the poll saw the unhealthy mark).
    server = start_sim(scenario="rolling-restart", rps=200.0, fleet=FAST.model_copy(update={"restart_s": 3.0}))
    with clients(server) as seen:
        poll(lambda: sum(seen.values()) > 5, what="client traffic")
        assert post(server, "/i-02/restart").json()["changed"] is True  # still registered: a naive restart
        state = poll(lambda: (s := one(server, "i-02"))["lb_state"] == "unhealthy" and s,
                     what="the health checks to notice the dead process")
        assert state["process"] == "starting"
        wait_back(server, "i-02")
        poll(lambda: one(server, "i-02")["lb_state"] == "healthy", what="i-02 healthy again")
    lb = counters(server)
    assert lb["elb_502"] > 0, "requests routed to the dead process (or cut at its exit) failed"
    assert one(server, "i-02")["failed"] == lb["elb_502"]
    assert set(seen) <= {200, 502}
    logs = local_http.get(f"{server.url}/_sim/logs", timeout=5).text
    assert "Received SIGTERM, initiating graceful shutdown..." in logs


def test_real_clients_get_the_alb_502_page_from_a_dead_target(start_sim: Start) -> None:
    """No simulated users, so every request is ours: while i-01 is down but still healthy in the load balancer's
    eyes, its round-robin turn answers the ALB page."""
    slow = FAST.model_copy(update={"restart_s": 5.0, "health_interval_s": 5.0})
    server = start_sim(scenario="rolling-restart", rps=0.0, fleet=slow)
    post(server, "/i-01/restart")
    poll(lambda: one(server, "i-01")["process"] == "starting", what="i-01 to exit")
    answers = [fetch(server.url, "/about") for _ in range(8)]
    failed = [a for a in answers if a.status == 502]
    assert len(failed) == 2, "one request in four lands on the dead target"
    _, body = alb_page(502)
    assert failed[0].header("Server") == "awselb/2.0" and failed[0].header("Content-Type") == "text/html"
    assert failed[0].body == body.decode() and "<title>502 Bad Gateway</title>" in failed[0].body
    assert counters(server)["elb_502"] == 2


def test_a_drained_restart_drops_nothing_and_the_drained_instance_gets_no_new_requests(start_sim: Start) -> None:
    server = start_sim(scenario="rolling-restart", rps=200.0, fleet=FAST)
    with clients(server) as seen:
        poll(lambda: sum(seen.values()) > 5, what="client traffic")
        assert post(server, "/i-03/drain").json()["changed"] is True
        drained = poll(lambda: (s := one(server, "i-03"))["lb_state"] == "unused" and s,
                       what="the deregistration to complete")
        assert drained["in_flight"] == 0
        served = drained["served"]
        post(server, "/i-03/restart")
        wait_back(server, "i-03")
        assert one(server, "i-03")["served"] == served, "a deregistered target gets no new requests"
        assert post(server, "/i-03/restore").json()["changed"] is True
        poll(lambda: one(server, "i-03")["lb_state"] == "healthy", what="i-03 healthy")
        poll(lambda: one(server, "i-03")["served"] > served, what="traffic to i-03 again")
    lb = counters(server)
    assert lb["elb_5xx"] == 0 and one(server, "i-03")["failed"] == 0
    assert set(seen) == {200}
    events = [e["event"] for e in one(server, "i-03")["events"]]
    assert events[1].startswith("deregistered") and "deregistration complete" in events
    assert events.index("deregistration complete") < events.index("SIGTERM")


def test_a_drain_waits_for_requests_in_flight_and_completes_early_when_none_are_left(start_sim: Start) -> None:
    server = start_sim(scenario="rolling-restart", rps=0.0, fleet=FAST)
    assert server.state is not None and server.state.fleet is not None
    target = server.state.fleet.targets["i-04"]
    now = server.state.clock.now_ms()
    target.virtual_ends.append(now + 600)  # one simulated request still running for 0.6 s
    post(server, "/i-04/drain")
    assert one(server, "i-04")["lb_state"] == "draining"
    poll(lambda: one(server, "i-04")["lb_state"] == "unused", timeout_s=2.0, what="the drain to finish")
    assert counters(server)["elb_502"] == 0, "the request finished; it was not cut"
    assert post(server, "/i-04/drain").json()["changed"] is False  # idempotent


def test_each_instance_keeps_its_own_metric_buffers_and_a_restart_resets_them(start_sim: Start) -> None:
    server = start_sim(scenario="rolling-restart", rps=100.0, fleet=FAST)
    before = {i: direct_page(server, i).count("http_requests_total{") for i in ("i-01", "i-02")}
    assert all(count > 20 for count in before.values())
    post(server, "/i-01/drain")
    post(server, "/i-01/restart")
    wait_back(server, "i-01")
    page = direct_page(server, "i-01")
    assert page.count("http_requests_total{") <= 1, "a fresh process: its only record is this scrape"
    uptime = float(next(line for line in page.splitlines() if line.startswith("process_uptime_seconds ")).split()[1])
    assert uptime < 5.0
    assert direct_page(server, "i-02").count("http_requests_total{") >= before["i-02"], "the others keep theirs"


def test_a_restarted_target_gets_traffic_only_after_passing_the_healthy_threshold(start_sim: Start) -> None:
    slow = FAST.model_copy(update={"health_interval_s": 0.5, "healthy_threshold": 3})
    server = start_sim(scenario="rolling-restart", rps=200.0, fleet=slow)
    post(server, "/i-02/drain")
    post(server, "/i-02/restart")
    wait_back(server, "i-02")
    post(server, "/i-02/restore")
    state = one(server, "i-02")
    assert state["lb_state"] == "initial" and state["process"] == "running"
    served = state["served"]
    assert one(server, "i-02")["served"] == served
    poll(lambda: one(server, "i-02")["lb_state"] == "healthy", timeout_s=5, what="three passing checks")
    poll(lambda: one(server, "i-02")["served"] > served, what="traffic after the threshold")


def test_an_instance_can_come_back_broken_from_a_restart(start_sim: Start) -> None:
    server = start_sim(scenario="rolling-restart", rps=200.0, fleet=FAST)
    assert post(server, "/faults", json={"after_restart": {"error_share": 1.0, "paths": ["/api/cart"]}}).status_code \
        == 200
    post(server, "/i-01/drain")
    post(server, "/i-01/restart")
    wait_back(server, "i-01")
    post(server, "/i-01/restore")
    poll(lambda: 'path="/api/cart",status="500"' in direct_page(server, "i-01"), what="the broken instance's 500s")
    assert 'status="500"' not in direct_page(server, "i-02"), "the others are fine"
    assert counters(server)["target_5xx"] > 0
    bad = post(server, "/faults", json={"after_restart": {"error_share": 2}})
    assert bad.status_code == 422


@pytest.mark.parametrize("path", ["/drain", "/restore", "/restart"])
def test_writes_are_idempotent_and_say_whether_they_changed_anything(start_sim: Start, path: str) -> None:
    server = start_sim(scenario="rolling-restart", rps=0.0, fleet=FAST)
    if path == "/restore":
        post(server, "/i-01/drain")
    first, second = post(server, f"/i-01{path}").json(), post(server, f"/i-01{path}").json()
    assert (first["changed"], second["changed"]) == (True, False)
