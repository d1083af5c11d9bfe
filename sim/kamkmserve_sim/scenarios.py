"""Incident scenarios, by name: what is deployed at start and what goes wrong when.

Each scenario starts from a fresh world (``SimState.reset``) and may schedule events relative to its start;
the traffic task fires them. Timings come from ``SimConfig.onset_s`` so tests can compress them.
"""

from __future__ import annotations

from typing import Protocol

from kamkmserve_sim.database_scenarios import LockContention, SlowQuery
from kamkmserve_sim.faults import Fault
from kamkmserve_sim.identity_scenarios import AuthKeyRotated, AuthMisconfig, AuthMisconfigNoRecovery
from kamkmserve_sim.instances_scenario import RollingRestart
from kamkmserve_sim.security_attack import MalwareBurst
from kamkmserve_sim.state import SimState
from kamkmserve_sim.traffic import HOUR_MS, PREFILL_REQUESTS, PREFILL_SPAN_MS, boot, prefill

FAULTY_PATHS = ("/api/checkout", "/api/cart")


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
        boot(state, now)
        state.releases.deploy("v1.4.2", None, now, created_at_ms=now - HOUR_MS)


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
        boot(state, now - PREFILL_SPAN_MS - 1000)
        state.releases.deploy("v1.4.2", None, now, created_at_ms=now - HOUR_MS)
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


class LoadSpike:
    """``load-spike``: four times the usual users arrive at once; every path slows as the replicas saturate.

    Start: v1.4.2 current (promoted three hours ago, so no deploy precedes the spike), two replicas at 40 %
    utilisation, ~200 healthy requests already recorded over the last minute. At ``onset_s`` the user traffic
    is multiplied by 4 (``SimConfig.spike_s`` later it returns to normal; by default it lasts until the
    scenario is reset): utilisation 1.6, requests queue before a replica takes them (``sim.capacity``), p95
    climbs into seconds, the average passes 1000 ms (the app's health JSON reads ``Elevated``/``High response
    time``) and the app logs ``Slow request detected: <METHOD> <path>`` for every request over 1000 ms.
    Database timings stay normal: this is pure load. Scaling to 4 replicas (``POST /_sim/capacity``) brings
    utilisation to 0.8 and p95 back under 500 ms as soon as the metrics window has turned over; 3 replicas
    are not enough. Maintenance on a path removes its share of the load. kamkmserve on Vercel has no scale
    knob (docs/reference/kamkmserve.md §12): the replica count stands for the platform's (ECS/ASG later).
    """

    name = "load-spike"
    factor = 4.0

    def start(self, state: SimState) -> None:
        now = state.clock.now_ms()
        boot(state, now - PREFILL_SPAN_MS - 1000)
        state.releases.deploy("v1.4.2", None, now, created_at_ms=now - 3 * HOUR_MS)
        prefill(state, PREFILL_REQUESTS, PREFILL_SPAN_MS)
        state.schedule(state.config.onset_s, lambda: self.surge(state, self.factor))
        if state.config.spike_s is not None:
            state.schedule(state.config.onset_s + state.config.spike_s, lambda: self.surge(state, 1.0))

    def surge(self, state: SimState, multiplier: float) -> None:
        state.load.traffic_multiplier = multiplier


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (Healthy(), BadRelease(), BadReleaseNoRecovery(), LoadSpike(),
                                                       SlowQuery(), LockContention(), MalwareBurst(),
                                                       AuthMisconfig(), AuthMisconfigNoRecovery(), AuthKeyRotated(),
                                                       RollingRestart())}


def start_scenario(state: SimState, name: str) -> None:
    """Reset the world and start ``name``; raises KeyError for an unknown scenario."""
    scenario = SCENARIOS[name]
    state.reset(name)
    scenario.start(state)
