"""Shared helpers for the auth runbook's scenario tests: in-process on virtual time (a ``VirtualWorld``), and over
real HTTP on the wall clock (a ``SimServer``) for the tests that keep a real server."""

from __future__ import annotations

import time
from typing import Any

from kamkmserve_sim import SimServer
from kamkmserve_sim.collector import MAX_STORED_REQUESTS
from kamkmserve_sim.inprocess import InProcessSim

from tests.flows.timekit import VirtualWorld
from tests.helpers import local_http

# Readings 0.3 s apart; at the tests' 200 requests/s the app's 500 request records turn over in 2.5 s.
FAST = {"sample_interval_s": 0.3, "confirm_samples": 2, "event_window_s": 30.0}


#: How long admins run into the changed configuration before a wall-clock test starts the runbook (on a loaded
#: machine the run's first readings come later still, so the app's records have turned over by then).
SETTLE_S = 1.5


def identity(server: SimServer) -> dict[str, Any]:
    body: dict[str, Any] = local_http.get(f"{server.url}/_sim/identity", timeout=5).json()
    return body


def flags(server: SimServer) -> dict[str, bool]:
    body = local_http.get(f"{server.url}/_sim/flags", timeout=5).json()
    return {name: state["enabled"] for name, state in body["flags"].items()}


def status_incidents(server: SimServer) -> list[dict[str, Any]]:
    incidents: list[dict[str, Any]] = local_http.get(f"{server.url}/_sim/status", timeout=5).json()["incidents"]
    return incidents


def wait_for_lockout(server: SimServer, settle_s: float = SETTLE_S) -> None:
    """Block until the scenario's configuration change is in, then let admins run into it for ``settle_s``."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if identity(server)["history"]:
            time.sleep(settle_s)
            return
        time.sleep(0.1)
    raise AssertionError("the identity configuration never changed")


async def identity_now(world: VirtualWorld) -> dict[str, Any]:
    return await world.read("/_sim/identity")


async def flags_now(world: VirtualWorld) -> dict[str, bool]:
    return {name: state["enabled"] for name, state in (await world.read("/_sim/flags"))["flags"].items()}


async def status_incidents_now(world: VirtualWorld) -> list[dict[str, Any]]:
    incidents: list[dict[str, Any]] = (await world.read("/_sim/status"))["incidents"]
    return incidents


async def lockout_serving(world: VirtualWorld) -> None:
    """Advance until the scenario's configuration change is in, then until every request record the app keeps (what
    the runbook's denial readings count) was served after it: the lockout is all the readings can see.

    A fixed settle is not that: at 200 requests/s the app's 500 records turn over in 2.5 s, so 1.5 s of virtual time
    leaves a second of admins getting in, and the admin API's share of refusals reads under the threshold."""
    await world.advance_until("the identity configuration change", lambda ident: bool(ident["history"]),
                              reading="/_sim/identity")
    sim = world.inside()
    changed_ms, served_before = sim.state.clock.now_ms(), sim.state.stats.app_served
    window = MAX_STORED_REQUESTS

    def only_lockout_recorded(sim: InProcessSim) -> bool:
        # Counted on what the app served too: in as-is mode it records nothing, yet its security events (what the
        # readings see there) should cover the same span.
        records = sim.state.instance.collector.requests
        return (sim.state.stats.app_served - served_before >= window
                and all(r.timestamp >= changed_ms for r in records))

    await world.advance_until_inside("the app's request records to hold only the lockout", only_lockout_recorded)
