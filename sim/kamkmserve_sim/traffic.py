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


class Pacer:
    """The users' arithmetic for one tick, shared by the wall-clock loop and virtual time's advance."""

    def __init__(self, rps: float) -> None:
        self.rps = rps
        self.owed = 0.0

    def tick(self, state: SimState, elapsed_s: float) -> None:
        """``elapsed_s`` has passed: fire due events, then send the requests owed by now."""
        current = self.rps * state.load.traffic_multiplier  # a surge (load-spike) multiplies the users
        # After a stall, catch up at most one second's worth rather than flooding the buffers.
        self.owed = min(self.owed + elapsed_s * current, max(current, 1.0))
        state.run_due()
        while self.owed >= 1.0:
            self.owed -= 1.0
            send_one(state)


def advance(state: SimState, pacer: Pacer, seconds: float) -> None:
    """Virtual time: move the manual clock ``seconds`` on in ticks of ``TICK_S``, users and events in each."""
    clock = state.clock.manual
    if clock is None:
        raise RuntimeError("this simulator runs on the wall clock")
    left = seconds
    while left > 1e-9:
        step = min(TICK_S, left)
        clock.advance(step)
        pacer.tick(state, step)
        left -= step
    state.run_due()  # also for a zero advance: anything due now lands before the answer


async def run_traffic(state: SimState, rps: float, pacer: Pacer | None = None) -> None:
    """Send ``rps`` requests per second until cancelled; also fires the scenario's scheduled events."""
    pacer = pacer or Pacer(rps)
    last = time.monotonic()
    while True:
        await asyncio.sleep(TICK_S)
        now = time.monotonic()
        pacer.tick(state, now - last)
        last = now
