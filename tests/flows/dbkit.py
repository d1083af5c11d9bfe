"""Shared helpers for the database runbook's scenario tests: the simulated database in-process on virtual time (a
``VirtualWorld``), and real PostgreSQL behind a real simulator server on the wall clock (a ``SimServer``)."""

from __future__ import annotations

import time
from typing import Any

from kamkmserve_sim import SimServer

from tests.flows.flowkit import wait_until
from tests.flows.timekit import VirtualWorld
from tests.helpers import local_http

# Fast, but faithful: one confirming reading (as after an alert), short windows, a small probe.
DB_FAST: dict[str, Any] = {"sample_interval_s": 0.3, "confirm_samples": 1, "log_window_s": 30.0,
                           "long_running_s": 1.0, "min_seq_scans": 10, "probe_requests": 10}


#: How long the stuck job holds its transaction before a test starts the runbook: writers have queued behind it.
HELD_S = 1.5


def plane(server: SimServer, path: str) -> Any:
    return local_http.get(f"{server.url}/_sim{path}", timeout=10).json()


def database(server: SimServer) -> dict[str, Any]:
    state: dict[str, Any] = plane(server, "/database")
    return state


def workers(server: SimServer) -> dict[str, int]:
    return {job["name"]: job["workers"] for job in plane(server, "/jobs")["jobs"]}


def wait_for_blocker(server: SimServer, held_s: float = HELD_S) -> int:
    """Block until the stuck job's session has held its transaction ``held_s`` and writers fail; its pid."""
    started = time.monotonic()
    wait_until("the stuck job transaction", lambda: database(server)["blocker"] is not None)
    time.sleep(max(0.0, held_s - (time.monotonic() - started)))
    wait_until("blocked writes", lambda: bool(plane(server, "/database/locks").get("waits")))
    pid: int = database(server)["blocker"]["pid"]
    return pid


def wait_for_seq_scans(server: SimServer, min_seq_scans: int = 10) -> None:
    """Block until the slow release runs and ``kamkmserve_order`` is flagged for sequential scans."""
    def flagged() -> bool:
        tables = plane(server, f"/database/scans?min_seq_scans={min_seq_scans}").get("tables", [])
        return any(t["table"] == "kamkmserve_order" and t["flagged"] for t in tables)

    wait_until("kamkmserve_order to be flagged for sequential scans", flagged)


async def database_now(world: VirtualWorld) -> dict[str, Any]:
    return await world.read("/_sim/database")


async def workers_now(world: VirtualWorld) -> dict[str, int]:
    return {job["name"]: job["workers"] for job in (await world.read("/_sim/jobs"))["jobs"]}


async def blocker_holding(world: VirtualWorld, held_s: float = HELD_S) -> int:
    """Advance until the stuck job's session has held its transaction ``held_s`` and writers fail; its pid."""
    started = await world.now_s()
    await world.advance_until("the stuck job transaction", lambda db: db["blocker"] is not None,
                              reading="/_sim/database")
    await world.advance(max(0.0, held_s - (await world.now_s() - started)))
    await world.advance_until("blocked writes", lambda locks: bool(locks.get("waits")),
                              reading="/_sim/database/locks")
    pid: int = (await database_now(world))["blocker"]["pid"]
    return pid


async def seq_scans_flagged(world: VirtualWorld, min_seq_scans: int = 10) -> None:
    """Advance until the slow release runs and ``kamkmserve_order`` is flagged for sequential scans."""
    await world.advance_until(
        "kamkmserve_order to be flagged for sequential scans",
        lambda scans: any(t["table"] == "kamkmserve_order" and t["flagged"] for t in scans.get("tables", [])),
        reading=f"/_sim/database/scans?min_seq_scans={min_seq_scans}")
