"""The load-spike scenario's model and the simulated platform's capacity control plane (``/_sim/capacity``).

What the runbook's metrics readers make of the surge is an adapter test
(tests/providers/test_request_stats_over_sim_load_spike.py): nothing here runs our parsers.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from kamkmserve_sim import SimServer
from kamkmserve_sim.capacity import LoadModel, mean_wait_ms

from tests.helpers import local_http

Start = Callable[..., SimServer]


def capacity(server: SimServer, method: str = "GET", **kwargs: Any) -> httpx.Response:
    return local_http.request(method, f"{server.url}/_sim/capacity", timeout=5, **kwargs)


def test_capacity_endpoint_reads_and_sets_replicas_idempotently(start_sim: Start) -> None:
    server = start_sim(scenario="healthy", rps=0)
    assert capacity(server).json() == {"service": "kamkmserve", "replicas": 2}
    assert capacity(server, params={"service": "kamkmserve"}).json()["replicas"] == 2
    assert capacity(server, "POST", json={"service": "kamkmserve", "replicas": 5}).json()["changed"] is True
    again = capacity(server, "POST", json={"replicas": 5}).json()
    assert again == {"service": "kamkmserve", "replicas": 5, "changed": False}
    assert capacity(server).json()["replicas"] == 5
    local_http.post(f"{server.url}/_sim/scenario", json={"name": "healthy"}, timeout=5)
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
def test_bad_capacity_requests_are_a_clear_422_and_change_nothing(start_sim: Start, body: Any, message: str) -> None:
    server = start_sim(scenario="healthy", rps=0)
    if isinstance(body, str):
        answer = capacity(server, "POST", content=body, headers={"content-type": "application/json"})
    else:
        answer = capacity(server, "POST", json=body)
    assert answer.status_code == 422
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
