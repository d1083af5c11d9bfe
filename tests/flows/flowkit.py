"""Shared helpers for runbook scenario tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kamkmserve_sim import SimServer

from tests.helpers import local_http

FAST = {"sample_interval_s": 0.3, "confirm_samples": 2, "min_records": 20}


def sim_state(server: SimServer) -> dict[str, Any]:
    state: dict[str, Any] = local_http.get(f"{server.url}/_sim/state", timeout=5).json()
    return state


def wait_until(what: str, check: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")
        time.sleep(0.1)


def wait_for_bad_release(server: SimServer) -> None:
    """Block until the scenario's faulty release is current and has served a window of traffic."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if sim_state(server)["current_release"]["version"] != "v1.4.2":
            time.sleep(1.0)
            return
        time.sleep(0.1)
    raise AssertionError("the bad release never went out")
