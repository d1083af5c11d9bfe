"""Incident scenarios, by name: what is deployed at start and what goes wrong when.

Each scenario starts from a fresh world (``SimState.reset``) and may schedule events relative to its start;
the traffic task fires them. Timings come from ``SimConfig.onset_s`` so tests can compress them.
"""

from __future__ import annotations

from typing import Protocol

from remediation.sim.faults import Fault
from remediation.sim.state import SimState
from remediation.sim.traffic import prefill

_HOUR_MS = 3_600_000
FAULTY_PATHS = ("/api/checkout", "/api/cart")
PREFILL_REQUESTS = 200
PREFILL_SPAN_MS = 60_000


class Scenario(Protocol):
    name: str

    def start(self, state: SimState) -> None: ...


class Healthy:
    """``healthy``: v1.4.2 (deployed an hour ago) is current; no fault anywhere, traffic from zero.

    The health endpoint can still read ``warning``/``critical`` now and then: like the real app, its status
    follows the heap ratio alone.
    """

    name = "healthy"

    def start(self, state: SimState) -> None:
        now = state.clock.now_ms()
        _boot(state, now)
        state.releases.deploy("v1.4.2", None, now, created_at_ms=now - _HOUR_MS)


class BadRelease:
    """``bad-release``: a deploy breaks checkout and cart; rolling back fixes it.

    Start: v1.4.2 current (created an hour ago) with ~200 healthy requests already recorded over the last
    minute. After ``onset_s``: v1.5.0 is deployed and promoted (a fresh instance, so buffers and uptime
    restart); about 60 % of the requests on ``/api/checkout`` and ``/api/cart`` that would have succeeded
    answer 500 (``{"error":"Failed to checkout"}`` and the like, a ``TypeError`` printed to stderr and
    reported to the error tracker against v1.5.0), with 150 ms extra latency on those paths.
    Rolling back to v1.4.2 stops new errors (its warm instance comes back); maintenance on those prefixes
    keeps the requests from ever reaching the app, so they vanish from its metrics.
    """

    name = "bad-release"
    release_fault = Fault(error_share=0.6, paths=FAULTY_PATHS, extra_latency_ms=150)

    def start(self, state: SimState) -> None:
        now = state.clock.now_ms()
        _boot(state, now - PREFILL_SPAN_MS - 1000)
        state.releases.deploy("v1.4.2", None, now, created_at_ms=now - _HOUR_MS)
        prefill(state, PREFILL_REQUESTS, PREFILL_SPAN_MS)
        state.schedule(state.config.onset_s, lambda: self.onset(state))

    def onset(self, state: SimState) -> None:
        state.releases.deploy("v1.5.0", self.release_fault, state.clock.now_ms())


class BadReleaseNoRecovery(BadRelease):
    """``bad-release-no-recovery``: like ``bad-release``, but the database starts failing at the same moment.

    At onset v1.5.0 ships its bug *and* the database becomes unreachable for the same paths: about 45 % of
    their requests fail with ``NeonDbError: Error connecting to database: TypeError: fetch failed`` (slow,
    as the driver waits for its fetch to fail), under every release. A rollback removes only the release's
    share; the outage's errors persist, so remediation must escalate instead of declaring victory.
    """

    name = "bad-release-no-recovery"
    outage = Fault(error_share=0.45, paths=FAULTY_PATHS, extra_latency_ms=0)

    def onset(self, state: SimState) -> None:
        super().onset(state)
        state.dependency_fault = self.outage


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (Healthy(), BadRelease(), BadReleaseNoRecovery())}


def start_scenario(state: SimState, name: str) -> None:
    """Reset the world and start ``name``; raises KeyError for an unknown scenario."""
    scenario = SCENARIOS[name]
    state.reset(name)
    scenario.start(state)


def _boot(state: SimState, at_ms: int) -> None:
    state.clock.pin(at_ms)
    try:
        state.log.print_banner(state.port)
    finally:
        state.clock.pin(None)
