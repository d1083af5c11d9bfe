"""Shared helpers for the auth runbook's scenario tests."""

from __future__ import annotations

import time
from typing import Any

import httpx
from kamkmserve_sim import SimServer

# Readings 0.3 s apart; at the tests' 200 requests/s the app's 500 request records turn over in 2.5 s.
FAST = {"sample_interval_s": 0.3, "confirm_samples": 2, "event_window_s": 30.0}


def identity(server: SimServer) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{server.url}/_sim/identity", timeout=5).json()
    return body


def flags(server: SimServer) -> dict[str, bool]:
    body = httpx.get(f"{server.url}/_sim/flags", timeout=5).json()
    return {name: state["enabled"] for name, state in body["flags"].items()}


def status_incidents(server: SimServer) -> list[dict[str, Any]]:
    incidents: list[dict[str, Any]] = httpx.get(f"{server.url}/_sim/status", timeout=5).json()["incidents"]
    return incidents


def wait_for_lockout(server: SimServer, settle_s: float = 1.5) -> None:
    """Block until the scenario's configuration change is in, then let admins run into it for ``settle_s``."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if identity(server)["history"]:
            time.sleep(settle_s)
            return
        time.sleep(0.1)
    raise AssertionError("the identity configuration never changed")
