"""Simulated users: a steady request stream over kamkmserve's real routes.

Requests are handed straight to the app model (no HTTP, so they never touch our own rate-limit budget) and
come from many user IPs. Whatever the current release, outage or maintenance does to a request happens to
these, which is what makes the app's metrics, logs and error tracker move.
"""

from __future__ import annotations

import asyncio
import time

from kamkmserve_sim.state import SimState

TICK_S = 0.05
HOUR_MS = 3_600_000
PREFILL_REQUESTS = 200  # how many requests a scenario's world has already served when it starts
PREFILL_SPAN_MS = 60_000  # ... over this last span


def boot(state: SimState, at_ms: int) -> None:
    """The app's start-up banner, as printed by a process that started at ``at_ms``."""
    state.clock.pin(at_ms)
    try:
        state.log.print_banner(state.port)
    finally:
        state.clock.pin(None)


def send_one(state: SimState) -> None:
    request = state.users.next_request()
    if not state.at_edge(request.path) and not state.security.edge_refuses(request.forwarded_for, request.real_ip):
        state.serve(request)


def prefill(state: SimState, count: int, span_ms: int) -> None:
    """Warm the buffers with ``count`` requests spread over the last ``span_ms``, as if already running."""
    now = state.clock.now_ms()
    try:
        for index in range(count):
            state.clock.pin(now - span_ms + (span_ms * index) // max(count, 1))
            send_one(state)
    finally:
        state.clock.pin(None)


async def run_traffic(state: SimState, rps: float) -> None:
    """Send ``rps`` requests per second until cancelled; also fires the scenario's scheduled events."""
    owed = 0.0
    last = time.monotonic()
    while True:
        await asyncio.sleep(TICK_S)
        now = time.monotonic()
        current = rps * state.load.traffic_multiplier  # a surge (load-spike) multiplies the users
        # After a stall, catch up at most one second's worth rather than flooding the buffers.
        owed = min(owed + (now - last) * current, max(current, 1.0))
        last = now
        state.run_due()
        while owed >= 1.0:
            owed -= 1.0
            send_one(state)
