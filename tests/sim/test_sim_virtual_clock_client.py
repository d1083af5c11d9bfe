"""The runbooks' side of virtual time: ``SimClock`` over the control plane, and how ``connect`` wires it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from kamkmserve_sim import SimConfig
from kamkmserve_sim.inprocess import InProcessSim

from remediation import composition
from remediation.providers.clock import RealClock
from remediation.providers.sim_clock import SimClock
from remediation.providers.sim_platform import ControlPlane
from remediation.settings import Settings


async def test_sleeping_on_the_sim_clock_advances_the_simulator_and_its_users() -> None:
    with InProcessSim(SimConfig(scenario="healthy", rps=100, seed=7)) as sim:
        clock = SimClock(ControlPlane(sim.url, transport=sim.transport()))
        start, mono = clock.now(), clock.monotonic()
        served = sim.state.stats.app_served
        await clock.sleep(3.0)
        assert clock.now() - start == timedelta(seconds=3)
        assert clock.monotonic() - mono == 3.0
        assert sim.state.stats.app_served - served >= 290  # 100 users/s for 3 virtual seconds


def _settings(tmp_path: Path, url: str, **extra: object) -> Settings:
    return Settings(app_url=url, home=tmp_path, **extra)  # type: ignore[arg-type]


def test_connect_uses_the_simulators_clock_only_for_a_virtual_simulator(tmp_path: Path) -> None:
    with InProcessSim(SimConfig(scenario="healthy", rps=0)) as sim:
        virtual = composition.connect(
            _settings(tmp_path, sim.url, platform="sim", sim_url=sim.url, sim_virtual_time=True),
            transport=sim.transport())
        assert isinstance(virtual.clock, SimClock)
        assert abs((virtual.clock.now() - RealClock().now()).total_seconds()) < 600
    wall = composition.connect(_settings(tmp_path, "http://127.0.0.1:9", platform="sim",
                                         sim_url="http://127.0.0.1:9"))
    assert isinstance(wall.clock, RealClock)
    live = composition.connect(_settings(tmp_path, "http://127.0.0.1:9", sim_virtual_time=True))
    assert isinstance(live.clock, RealClock), "no live platform ever runs on the simulator's time"
