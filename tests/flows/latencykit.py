"""Helpers for the high-latency runbook tests: compressed timings, the sim's replica count, the spike."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from kamkmserve_sim import SimServer

# Seconds instead of the production hour: two confirming readings, checks every half second.
FAST_LATENCY: dict[str, Any] = {"sample_interval_s": 0.3, "confirm_samples": 2, "min_records": 20,
                                "watch_interval_s": 0.5}


def replicas(server: SimServer) -> int:
    body: dict[str, Any] = httpx.get(f"{server.url}/_sim/capacity", timeout=5).json()
    return int(body["replicas"])


def maintenance(server: SimServer) -> list[str]:
    return list(httpx.get(f"{server.url}/_sim/maintenance", timeout=5).json()["prefixes"])


def wait_for_spike(server: SimServer) -> None:
    """Block until the surge is on and the app's metrics window holds only requests from the surge."""
    assert server.state is not None
    deadline = time.monotonic() + 10
    while server.state.load.traffic_multiplier == 1.0:
        if time.monotonic() > deadline:
            raise AssertionError("the load spike never started")
        time.sleep(0.05)
    time.sleep(0.6)


@contextmanager
def replica_history(server: SimServer, every_s: float = 0.1) -> Iterator[list[int]]:
    """Record the sim's replica count in the background, so a test can see a scale-up that was later undone."""
    seen: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                count = replicas(server)
            except httpx.HTTPError:
                count = -1
            if not seen or seen[-1] != count:
                seen.append(count)
            stop.wait(every_s)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(5)


@contextmanager
def surge_ends_once_shed(server: SimServer) -> Iterator[None]:
    """End the surge as soon as maintenance is on somewhere: the world calming down while a path is shed."""
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if maintenance(server):
                assert server.state is not None
                server.state.load.traffic_multiplier = 1.0
                return
            stop.wait(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)
