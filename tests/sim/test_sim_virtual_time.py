"""Virtual time: the simulator's clock, users and scheduled events move only when the control plane says so."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest
from kamkmserve_sim import SimConfig, SimServer
from kamkmserve_sim.inprocess import InProcessSim

from tests.helpers import local_http

StartSim = Callable[..., SimServer]


async def _client(sim: InProcessSim, **kwargs: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=sim.transport(), base_url=sim.url, **kwargs)  # type: ignore[arg-type]


async def _state(client: httpx.AsyncClient) -> dict[str, object]:
    body: dict[str, object] = (await client.get("/_sim/state")).json()
    return body


def test_wall_clock_simulator_says_so_and_refuses_to_advance(start_sim: StartSim) -> None:
    server = start_sim(scenario="healthy", rps=0)
    told = local_http.get(f"{server.url}/_sim/time", timeout=5).json()
    assert told["virtual"] is False and abs(told["now_ms"] - time.time() * 1000) < 60_000
    refused = local_http.post(f"{server.url}/_sim/time/advance", json={"seconds": 1}, timeout=5)
    assert refused.status_code == 409
    assert refused.json() == {"error": "this simulator runs on the wall clock"}


def test_virtual_server_over_a_socket_sends_no_users_until_time_is_advanced(start_sim: StartSim) -> None:
    server = start_sim(scenario="healthy", rps=200, virtual_time=True)
    before = local_http.get(f"{server.url}/_sim/state", timeout=5).json()["stats"]["app_served"]
    again = local_http.get(f"{server.url}/_sim/state", timeout=5).json()["stats"]["app_served"]
    assert again == before
    start_ms = local_http.get(f"{server.url}/_sim/time", timeout=5).json()["now_ms"]
    moved = local_http.post(f"{server.url}/_sim/time/advance", json={"seconds": 2}, timeout=5).json()
    assert moved == {"now_ms": start_ms + 2000, "virtual": True}
    after = local_http.get(f"{server.url}/_sim/state", timeout=5).json()["stats"]["app_served"]
    assert after - before == pytest.approx(400, abs=2)  # 200 users/s for 2 virtual seconds


async def test_advance_fires_the_scenarios_onset_only_when_virtual_time_reaches_it() -> None:
    with InProcessSim(SimConfig(scenario="bad-release", rps=100, onset_s=5.0, seed=7)) as sim:
        async with await _client(sim) as client:
            await client.post("/_sim/time/advance", json={"seconds": 4.9})
            assert (await _state(client))["current_release"]["version"] == "v1.4.2"  # type: ignore[index]
            await client.post("/_sim/time/advance", json={"seconds": 0.1})
            assert (await _state(client))["current_release"]["version"] == "v1.5.0"  # type: ignore[index]


@pytest.mark.parametrize("body", [{}, {"seconds": -1}, {"seconds": "3"}, {"seconds": True}, {"seconds": 1e9}])
async def test_bad_advance_is_the_control_planes_422(body: dict[str, object]) -> None:
    with InProcessSim(SimConfig(scenario="healthy", rps=0)) as sim:
        async with await _client(sim) as client:
            answer = await client.post("/_sim/time/advance", json=body)
            assert answer.status_code == 422 and "seconds" in answer.json()["error"]
            assert (await client.post("/_sim/time/advance", content=b"[")).status_code == 422


async def test_slow_metrics_endpoint_times_the_client_out_without_waiting() -> None:
    with InProcessSim(SimConfig(scenario="healthy", rps=0)) as sim:
        async with await _client(sim, timeout=1.0) as client:
            await client.post("/_sim/faults", json={"metrics": "slow", "slow_seconds": 300})
            wall = time.monotonic()
            with pytest.raises(httpx.ReadTimeout):
                await client.get("/api/monitoring/metrics")
            assert time.monotonic() - wall < 60  # a real wait would take 300 s


async def test_slow_release_reports_its_latency_to_the_client_and_the_apps_metrics() -> None:
    waits: list[float] = []
    with InProcessSim(SimConfig(scenario="healthy", rps=0)) as sim:
        async with httpx.AsyncClient(transport=sim.transport(on_wait=waits.append), base_url=sim.url) as client:
            fault = {"error_share": 0.0, "paths": ["/api/cart"], "extra_latency_ms": 4000}
            await client.post("/_sim/releases", json={"version": "v9", "fault": fault})
            client.cookies.set("__session", "sim_session_user_probe_member")
            answer = await client.get("/api/cart")
            assert answer.status_code < 500
            assert waits and waits[-1] >= 4.0
            metrics = (await client.get("/api/monitoring/metrics")).text
            assert "/api/cart" in metrics
