"""Helpers for the rolling-restart runbook tests: a fast fleet, compressed timings, reading the sim's instances.

The plain readers (``fleet``, ``generations``, ...) read a simulator server over HTTP (the AWS rolling-restart test
and the orchestration tests use them); the ``*_of`` readers read a ``VirtualWorld`` on virtual time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from kamkmserve_sim import SimServer
from kamkmserve_sim.instances_config import FleetConfig

from tests.helpers import local_http

if TYPE_CHECKING:
    from kamkmserve_sim.inprocess import InProcessSim

    from tests.flows.timekit import VirtualWorld

# Three instances, a half-second restart, health checks every 0.2 s: a batch takes a few seconds, not minutes.
FLEET = FleetConfig(instances=3, restart_s=0.5, health_interval_s=0.2, healthy_threshold=2, unhealthy_threshold=2,
                    deregistration_delay_s=2.0)
# One SLO reading per second (each instance's own page: 60/min, under its 100/min rate limit), two to be stable.
FAST_RESTART: dict[str, Any] = {"check_interval_s": 1.0, "stable_checks": 2, "min_records": 10,
                                "window_records": 50, "stable_timeout_s": 20.0, "restart_timeout_s": 20.0}

Instances = dict[str, dict[str, Any]]


def fleet(server: SimServer) -> dict[str, Any]:
    body: dict[str, Any] = local_http.get(f"{server.url}/_sim/instances", timeout=5).json()
    return body


def instances(server: SimServer) -> Instances:
    return {i["id"]: i for i in fleet(server)["instances"]}


def generations(server: SimServer) -> dict[str, int]:
    return {name: int(i["generation"]) for name, i in instances(server).items()}


def lb_states(server: SimServer) -> dict[str, str]:
    return {name: str(i["lb_state"]) for name, i in instances(server).items()}


def kinds(report: dict[str, Any], state: str | None = None) -> list[str]:
    return [a["kind"] for a in report["actions"] if state is None or a["state"] == state]


# -- the same readings of a VirtualWorld (the simulator in-process, on virtual time) ------------------------------


async def fleet_of(world: VirtualWorld) -> dict[str, Any]:
    return await world.read("/_sim/instances")


async def instances_of(world: VirtualWorld) -> Instances:
    return {i["id"]: i for i in (await fleet_of(world))["instances"]}


async def generations_of(world: VirtualWorld) -> dict[str, int]:
    return {name: int(i["generation"]) for name, i in (await instances_of(world)).items()}


async def lb_states_of(world: VirtualWorld) -> dict[str, str]:
    return {name: str(i["lb_state"]) for name, i in (await instances_of(world)).items()}


async def elb_5xx_of(world: VirtualWorld) -> int:
    return int((await fleet_of(world))["load_balancer"]["elb_5xx"])


class Fired:
    """Whether a :func:`once` hook ran."""

    def __init__(self) -> None:
        self._fired = False

    def set(self) -> None:
        self._fired = True

    def is_set(self) -> bool:
        return self._fired


@contextmanager
def once(world: VirtualWorld, condition: Callable[[Instances], bool],
         then: Callable[[InProcessSim], None]) -> Iterator[Fired]:
    """Run ``then(sim)`` once, the first time ``condition(instances)`` holds.

    The instances are the ones ``GET /_sim/instances`` would list, read after every answer the simulator gives
    (``VirtualWorld.watching``): on virtual time the fleet changes only inside a request, so no state between two
    requests is missed, and ``then`` acts before the runbook's next request, as a background poller on the wall
    clock would (up to its polling interval later)."""
    fired = Fired()

    def watch(sim: InProcessSim) -> None:
        if fired.is_set() or sim.state.fleet is None:
            return
        listed = cast(list[dict[str, Any]], sim.state.fleet.public()["instances"])
        if condition({i["id"]: i for i in listed}):
            then(sim)
            fired.set()

    with world.watching(watch):
        yield fired
