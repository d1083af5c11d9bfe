"""SimCapacity: the Capacity capability over the simulated platform's ``/_sim/capacity``, and its wiring."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kamkmserve_sim import SimConfig, SimServer

from remediation import composition
from remediation.providers.platform import PlatformError
from remediation.providers.sim_capacity import SimCapacity
from remediation.providers.sim_platform import ControlPlane
from remediation.settings import Settings


@pytest.fixture
def server() -> Iterator[SimServer]:
    with SimServer(SimConfig(scenario="healthy", rps=0, seed=7)) as sim:
        yield sim


def faked(answer: Any, status: int = 200) -> SimCapacity:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, json=answer))
    return SimCapacity(ControlPlane("http://platform.test", transport=transport))


async def test_reads_and_sets_the_replica_count_on_the_platform(server: SimServer) -> None:
    capacity = SimCapacity(ControlPlane(server.url))
    assert await capacity.replicas("kamkmserve") == 2
    assert await capacity.scale("kamkmserve", 4) == 4
    assert await capacity.scale("kamkmserve", 4) == 4  # idempotent
    assert await capacity.replicas("kamkmserve") == 4
    assert server.state is not None and server.state.load.replicas == 4


async def test_a_refused_count_is_a_platform_error_with_the_reason(server: SimServer) -> None:
    capacity = SimCapacity(ControlPlane(server.url))
    with pytest.raises(PlatformError, match=r"HTTP 422.*between 1 and 100"):
        await capacity.scale("kamkmserve", 0)
    with pytest.raises(PlatformError, match="HTTP 404"):
        await capacity.replicas("another-service")
    assert await capacity.replicas("kamkmserve") == 2


@pytest.mark.parametrize(
    "answer",
    [{"service": "kamkmserve", "replicas": "many"}, {"service": "kamkmserve", "replicas": 0}, {"replicas": 2},
     ["kamkmserve", 2]],
)  # fmt: skip
async def test_an_answer_that_is_not_a_replica_count_is_a_platform_error(answer: Any) -> None:
    with pytest.raises(PlatformError, match="not a replica count"):
        await faked(answer).replicas("kamkmserve")


async def test_an_answer_about_another_service_is_refused() -> None:
    with pytest.raises(PlatformError, match="'other'"):
        await faked({"service": "other", "replicas": 3}).scale("kamkmserve", 3)


async def test_an_unreachable_platform_is_a_platform_error() -> None:
    with pytest.raises(PlatformError, match=re.escape("GET http://127.0.0.1:9/_sim/capacity")):
        await SimCapacity(ControlPlane("http://127.0.0.1:9", timeout_s=2)).replicas("kamkmserve")


def test_connect_gives_the_simulated_platform_a_capacity_lever(tmp_path: Path) -> None:
    providers = composition.connect(Settings(app_url="http://127.0.0.1:9", platform="sim",
                                             sim_url="http://127.0.0.1:9", home=tmp_path))
    assert isinstance(providers.capacity, SimCapacity)
    assert providers.capacity.plane.base_url == "http://127.0.0.1:9"
