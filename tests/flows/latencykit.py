"""Helpers for the high-latency runbook tests: compressed timings, the sim's replica count, the spike.

In-process on virtual time (a ``VirtualWorld``; what a background poller watched on the wall clock, a watcher
called after every answer of the simulator sees), and, for the tests that keep a real server on the wall clock,
over real HTTP (a ``SimServer``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kamkmserve_sim import SimServer
from kamkmserve_sim.inprocess import InProcessSim

from tests.flows.timekit import VirtualWorld
from tests.helpers import local_http

# Seconds instead of the production hour: two confirming readings, checks every half second.
FAST_LATENCY: dict[str, Any] = {"sample_interval_s": 0.3, "confirm_samples": 2, "min_records": 20,
                                "watch_interval_s": 0.5}


def replicas(server: SimServer) -> int:
    body: dict[str, Any] = local_http.get(f"{server.url}/_sim/capacity", timeout=5).json()
    return int(body["replicas"])


#: How long the surge runs before a test starts the runbook: the app's recent requests are then all surge traffic.
SURGE_SETTLE_S = 0.6


async def replicas_now(world: VirtualWorld) -> int:
    return int((await world.read("/_sim/capacity"))["replicas"])


async def maintenance_now(world: VirtualWorld) -> list[str]:
    return list((await world.read("/_sim/maintenance"))["prefixes"])


async def spike_serving(world: VirtualWorld) -> None:
    """Advance until the surge is on, then long enough that the app's metrics window holds only surge requests."""
    await world.advance_until_inside("the load spike", lambda sim: sim.state.load.traffic_multiplier != 1.0)
    await world.advance(SURGE_SETTLE_S)


@contextmanager
def replica_counts(world: VirtualWorld) -> Iterator[list[int]]:
    """Every replica count the platform had between two answers of the simulator: a scale-up later undone shows."""
    seen: list[int] = []

    def record(sim: InProcessSim) -> None:
        count = sim.state.load.replicas
        if not seen or seen[-1] != count:
            seen.append(count)

    with world.watching(record):
        yield seen


@contextmanager
def surge_ends_when_shed(world: VirtualWorld) -> Iterator[None]:
    """The surge ends in the same instant maintenance goes on somewhere: the world calming down while a path is shed."""

    def calm(sim: InProcessSim) -> None:
        if sim.state.edge.maintenance:
            sim.state.load.traffic_multiplier = 1.0

    with world.watching(calm):
        yield


def wait_for_spike(server: SimServer) -> None:
    """Block until the surge is on and the app's metrics window holds only requests from the surge."""
    assert server.state is not None
    deadline = time.monotonic() + 10
    while server.state.load.traffic_multiplier == 1.0:
        if time.monotonic() > deadline:
            raise AssertionError("the load spike never started")
        time.sleep(0.05)
    time.sleep(SURGE_SETTLE_S)
