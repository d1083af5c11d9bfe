"""``SimInstances`` (platform.Instances + instances.InstanceMetrics) against a real simulator with a load balancer, and
the pure page helpers it feeds (our own scrapes left out, pooling, uptime)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kamkmserve_sim import SimConfig, SimServer
from kamkmserve_sim.instances_config import FleetConfig

from remediation.providers.instances import pooled_request_stats, uptime_s, user_request_stats, without_own_scrapes
from remediation.providers.platform import PlatformError
from remediation.providers.sim_instances import SimInstances
from remediation.providers.sim_platform import ControlPlane

SERVICE = "kamkmserve"
FLEET = FleetConfig(instances=3, restart_s=0.3, health_interval_s=0.1, healthy_threshold=2, unhealthy_threshold=2,
                    deregistration_delay_s=1.0)

PAGE = """# HELP process_uptime_seconds Process uptime in seconds
# TYPE process_uptime_seconds gauge
process_uptime_seconds 12.5
# HELP http_requests_total Total HTTP requests observed
# TYPE http_requests_total counter
http_requests_total{method="GET",path="/",status="200"} 1
http_requests_total{method="GET",path="/api/monitoring/metrics",status="200"} 1
http_requests_total{method="POST",path="/api/checkout",status="500"} 1
# HELP http_request_duration Auto-exported metric
# TYPE http_request_duration gauge
http_request_duration{method="GET",path="/",status="200"} 80
http_request_duration{method="GET",path="/api/monitoring/metrics",status="200"} 3
http_request_duration{method="POST",path="/api/checkout",status="500"} 400
"""


@pytest.fixture
def server() -> Iterator[SimServer]:
    sim = SimServer(SimConfig(scenario="rolling-restart", rps=150.0, seed=11, fleet=FLEET)).start()
    try:
        yield sim
    finally:
        sim.stop()


def adapter(server: SimServer, **kwargs: float) -> SimInstances:
    return SimInstances(ControlPlane(server.url), poll_s=0.05, **kwargs)  # type: ignore[arg-type]


async def test_lists_instances_with_the_load_balancers_state_and_the_process_in_detail(server: SimServer) -> None:
    listed = await adapter(server).instances(SERVICE)
    assert [(i.id, i.state) for i in listed] == [("i-01", "healthy"), ("i-02", "healthy"), ("i-03", "healthy")]
    assert listed[0].detail.startswith("process running, generation 0")


async def test_drain_waits_until_out_of_rotation_and_is_idempotent(server: SimServer) -> None:
    fleet = adapter(server)
    drained = await fleet.drain(SERVICE, "i-02", timeout_s=5)
    assert drained.state == "unused" and "0 in flight" in drained.detail
    again = await fleet.drain(SERVICE, "i-02", timeout_s=5)
    assert again.state == "unused"


async def test_a_drain_that_outlasts_its_timeout_says_what_it_saw(server: SimServer) -> None:
    assert server.state is not None and server.state.fleet is not None
    server.state.fleet.targets["i-01"].http_in_flight = 1  # a request that never finishes
    with pytest.raises(PlatformError, match=r"i-01 is still draining .* waiting for it to be out of rotation"):
        await adapter(server).drain(SERVICE, "i-01", timeout_s=0.3)


async def test_restart_then_restore_brings_a_new_process_back_healthy(server: SimServer) -> None:
    fleet = adapter(server)
    await fleet.drain(SERVICE, "i-03", timeout_s=5)
    asked = fleet.clock.monotonic()
    await fleet.restart(SERVICE, "i-03")
    restored = await fleet.restore(SERVICE, "i-03", timeout_s=10)
    assert restored.state == "healthy" and "generation 1" in restored.detail
    after = await fleet.metrics_page(SERVICE, "i-03")
    uptime = uptime_s(after.text or "")
    assert uptime is not None and uptime < fleet.clock.monotonic() - asked, "a process younger than the request"


async def test_a_page_of_an_instance_that_is_down_is_an_error_not_an_exception(server: SimServer) -> None:
    fleet = adapter(server)
    await fleet.drain(SERVICE, "i-01", timeout_s=5)
    await fleet.restart(SERVICE, "i-01")
    assert server.state is not None and server.state.fleet is not None
    target = server.state.fleet.targets["i-01"]
    while target.process_state(server.state.clock.now_ms()) != "starting":
        await fleet.clock.sleep(0.02)
    page = await fleet.metrics_page(SERVICE, "i-01")
    assert page.text is None and page.error is not None and "502" in page.error


async def test_load_balancer_counters_and_settings(server: SimServer) -> None:
    lb = await adapter(server).load_balancer(SERVICE)
    assert lb.deregistration_delay_s == 1.0 and lb.health_interval_s == 0.1 and lb.healthy_threshold == 2
    assert lb.requests > 0 and lb.elb_5xx == 0


async def test_a_scenario_without_a_load_balancer_or_another_service_is_a_platform_error() -> None:
    with SimServer(SimConfig(scenario="healthy", rps=0.0, seed=1)).start() as single, \
            pytest.raises(PlatformError, match="409"):
        await adapter(single).instances(SERVICE)
    with SimServer(SimConfig(scenario="rolling-restart", rps=0.0, seed=1, fleet=FLEET)).start() as fleet, \
            pytest.raises(PlatformError, match="not 'payments'"):
        await adapter(fleet).instances("payments")


def test_our_own_scrapes_are_not_user_traffic() -> None:
    assert 'path="/api/monitoring/metrics"' not in without_own_scrapes(PAGE)
    stats = user_request_stats(PAGE, 100)
    assert stats.records == 2 and stats.errors_5xx == 1 and stats.latency_samples == 2
    assert uptime_s(PAGE) == 12.5


def test_pooling_takes_each_instances_recent_requests_together() -> None:
    healthy = PAGE.replace('status="500"} 1', 'status="200"} 1').replace('status="500"} 400', 'status="200"} 90')
    pooled = pooled_request_stats([PAGE, healthy], window_records=100)
    assert pooled.records == 4 and pooled.errors_5xx == 1 and pooled.error_rate_5xx_pct == 25.0
    assert pooled.p95_ms == 400.0 and pooled.latency_samples == 4
    with pytest.raises(ValueError):
        pooled_request_stats(["<html>nope</html>"], window_records=100)
