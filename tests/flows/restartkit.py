"""Helpers for the rolling-restart runbook tests: a fast fleet, compressed timings, reading the sim's instances."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from kamkmserve_sim import SimServer
from kamkmserve_sim.instances_config import FleetConfig

# Three instances, a half-second restart, health checks every 0.2 s: a batch takes a few seconds, not minutes.
FLEET = FleetConfig(instances=3, restart_s=0.5, health_interval_s=0.2, healthy_threshold=2, unhealthy_threshold=2,
                    deregistration_delay_s=2.0)
# One SLO reading per second (each instance's own page: 60/min, under its 100/min rate limit), two to be stable.
FAST_RESTART: dict[str, Any] = {"check_interval_s": 1.0, "stable_checks": 2, "min_records": 10,
                                "window_records": 50, "stable_timeout_s": 20.0, "restart_timeout_s": 20.0}


def fleet(server: SimServer) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{server.url}/_sim/instances", timeout=5).json()
    return body


def instances(server: SimServer) -> dict[str, dict[str, Any]]:
    return {i["id"]: i for i in fleet(server)["instances"]}


def generations(server: SimServer) -> dict[str, int]:
    return {name: int(i["generation"]) for name, i in instances(server).items()}


def lb_states(server: SimServer) -> dict[str, str]:
    return {name: str(i["lb_state"]) for name, i in instances(server).items()}


def elb_5xx(server: SimServer) -> int:
    return int(fleet(server)["load_balancer"]["elb_5xx"])


def kinds(report: dict[str, Any], state: str | None = None) -> list[str]:
    return [a["kind"] for a in report["actions"] if state is None or a["state"] == state]


@contextmanager
def once(server: SimServer, condition: Callable[[dict[str, dict[str, Any]]], bool],
         then: Callable[[], None]) -> Iterator[threading.Event]:
    """Run ``then`` once, the first time ``condition(instances)`` holds (polled in the background)."""
    fired = threading.Event()
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                if condition(instances(server)):
                    then()
                    fired.set()
                    return
            except httpx.HTTPError:
                pass
            stop.wait(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield fired
    finally:
        stop.set()
        thread.join(5)
